"""The add-on and backup endpoints in-process over real add-ons: what they answer, what
they refuse, what they never show (a password), and a download byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from addon_world import World
from starlette.testclient import TestClient

from agent.api.app import build_api
from agent.api.services import Services
from agent.backups.scheduler import BackupScheduler
from agent.config import Config
from agent.paths import PathSettings
from agent.store.keys import KeyStore
from agent.store.releases import ReleaseStore

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def api(world: World) -> Iterator[TestClient]:
    services = Services(
        config=Config(paths=PathSettings(data_dir=world.data_dir)), apps=world.apps,
        releases=ReleaseStore(world.db), events=world.events, keys=KeyStore(world.db),
        deployer=None, runtime=None, ssh_command="",  # type: ignore[arg-type]
        addons=world.service, backups=world.backups, app_instances=world.instances,
        backup_scheduler=BackupScheduler(world.backups))
    with TestClient(build_api(services)) as client:
        yield client


def events(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_create_list_download_destroy(world: World, api: TestClient) -> None:
    app = world.shop
    world.apps.create(app)
    created = events(api.post(f"/apps/{app}/addons", json={"kind": "redis"}))
    assert created[-1]["result"]["variable"] == "REDIS_URL"
    password = world.service.store.get(app, "redis").password
    listed = api.get(f"/apps/{app}/addons").json()
    assert [(r["name"], r["state"], r["last_backup"]) for r in listed] == [("redis", "running", None)]
    everything = api.get("/addons").text + api.get(f"/apps/{app}/addons/redis").text
    assert password not in everything + repr(created)
    world.redis(world.service.store.get(app, "redis").url, "SET", "k", "v")
    captured = events(api.post(f"/apps/{app}/backups", json={}))[-1]["result"]
    body = api.get(f"/apps/{app}/backups/{captured['id']}/download").content
    assert body == Path(captured["path"]).read_bytes() and body.startswith(b"REDIS")
    assert api.get(f"/apps/{app}/addons/redis").json()["last_backup"]["id"] == "b1"
    refused = api.delete(f"/apps/{app}/addons/redis")
    assert refused.status_code == 400 and "--confirm" in refused.json()["error"]
    done = events(api.delete(f"/apps/{app}/addons/redis", params={"confirm": app}))
    assert done[-1]["result"] == {"destroyed": "redis", "final_backup": "b2"}
    assert [b["reason"] for b in api.get(f"/apps/{app}/backups").json()] == ["manual", "final"]
    assert api.get(f"/apps/{app}/addons").json() == []


@pytest.mark.parametrize("body, error", [
    ({"kind": "mysql"}, "unknown add-on kind"),
    ({"kind": "postgres", "version": "latest"}, "invalid version"),
    ({"kind": "redis", "as": "a b"}, "invalid --as"),
    ({"kind": "redis", "version": 7}, "version must be a string"),
])
def test_bad_input_is_one_line_and_changes_nothing(world: World, api: TestClient,
                                                   body: dict[str, Any], error: str) -> None:
    world.apps.create(world.shop)
    response = api.post(f"/apps/{world.shop}/addons", json=body)
    assert response.status_code == 400 and error in response.json()["error"]
    assert world.service.store.of_app(world.shop) == []
    assert api.get(f"/apps/{world.shop}/backups/b1/download").status_code == 404
    assert api.get(f"/apps/{world.shop}/backups/x1/download").status_code == 400
    assert api.get("/apps/nope/addons").status_code == 404


def test_an_addon_host_name_past_one_dns_label_is_refused(world: World, api: TestClient) -> None:
    app = "a" * 22 + world.tag[:8]  # the longest app name
    world.apps.create(app)
    try:
        response = api.post(f"/apps/{app}/addons", json={"kind": "redis", "as": "b" * 30})
        assert response.status_code == 400
        assert "at most 63 (choose a shorter --as)" in response.json()["error"]
        assert world.service.store.of_app(app) == []
    finally:
        world.apps.delete(app)


def test_a_variable_the_app_already_has_is_not_overwritten(world: World, api: TestClient) -> None:
    world.apps.create(world.shop)
    world.apps.replace_config(world.shop, {"DATABASE_URL": "postgres://elsewhere/db"})
    response = api.post(f"/apps/{world.shop}/addons", json={"kind": "postgres"})
    assert response.status_code == 400 and "--as" in response.json()["error"]
    assert world.apps.config(world.shop) == {"DATABASE_URL": "postgres://elsewhere/db"}


def test_schedules_are_set_checked_and_shown(world: World, api: TestClient) -> None:
    app = world.shop
    world.apps.create(app)
    events(api.post(f"/apps/{app}/addons", json={"kind": "redis"}))
    shown = api.get(f"/apps/{app}/addons/redis").json()
    assert "03:00" <= shown["schedule"]["at"] <= "04:59" and shown["backup_error"] is None
    bad = api.put(f"/apps/{app}/addons/redis/schedule", json={"at": "25:00"})
    assert bad.status_code == 400 and "HH:MM" in bad.json()["error"]
    bad = api.put(f"/apps/{app}/addons/redis/schedule", json={"at": "01:00", "keep_daily": "x"})
    assert bad.status_code == 400
    good = api.put(f"/apps/{app}/addons/redis/schedule",
                   json={"at": "01:30", "keep_daily": 3, "keep_weekly": 2})
    assert good.status_code == 200
    assert api.get(f"/apps/{app}/addons").json()[0]["schedule"] == {
        "at": "01:30", "keep_daily": 3, "keep_weekly": 2}


def test_restart_keeps_the_data_and_no_backup_destroys_without_one(world: World,
                                                                    api: TestClient) -> None:
    app = world.shop
    world.apps.create(app)
    events(api.post(f"/apps/{app}/addons", json={"kind": "redis"}))
    addon = world.service.store.get(app, "redis")
    world.redis(addon.url, "SET", "k", "kept")
    began = world.client.api.inspect_container(addon.container)["State"]["StartedAt"]
    assert events(api.post(f"/apps/{app}/addons/redis/restart"))[-1]["result"] == {
        "restarted": "redis"}
    assert world.client.api.inspect_container(addon.container)["State"]["StartedAt"] != began
    assert world.redis(addon.url, "GET", "k") == "kept"  # saved at its clean stop
    api.put(f"/apps/{app}/addons/redis/schedule", json={"at": "01:30"})
    done = events(api.delete(f"/apps/{app}/addons/redis", params={"confirm": app, "backup": "0"}))
    assert done[-1]["result"] == {"destroyed": "redis", "final_backup": None}
    assert api.get(f"/apps/{app}/backups").json() == []
    # A new add-on of the same name starts afresh: not with the old one's schedule.
    events(api.post(f"/apps/{app}/addons", json={"kind": "redis"}))
    assert api.get(f"/apps/{app}/addons/redis").json()["schedule"]["at"] != "01:30"
