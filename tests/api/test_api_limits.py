"""ps:limit through the control API: shown with the defaults, set per process type,
refused in one line, stored until the app goes, and in apps:info."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.api.app import build_api
from agent.store.limits import SCHEMA as LIMITS_SCHEMA
from agent.store.limits import LimitStore
from agent.store.schema import SCHEMA
from tests.api.conftest import World, make_services


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[World]:
    services, db = make_services(tmp_path, schemas=(SCHEMA, LIMITS_SCHEMA))
    services.limits = LimitStore(db)
    services.app_service().create("shop")
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        yield World(client, services, db)
    db.close()


def test_limits_are_shown_set_and_cleared(limited: World) -> None:
    shown = limited.client.get("/apps/shop/limits").json()
    assert shown == {"defaults": "memory=1g cpus=1 pids=1024",
                     "limits": {"release": "memory=1g cpus=1 pids=1024",
                                "run": "memory=1g cpus=1 pids=1024"}}  # not deployed yet
    events = limited.stream("POST", "/apps/shop/limits",
                            json={"process": "web", "limits": ["memory=512m", "pids=256"]})
    assert events[-1] == {"result": {"process": "web", "limits": "memory=512m cpus=1 pids=256"}}
    limited.stream("POST", "/apps/shop/limits", json={"process": "web", "limits": ["pids="]})
    info = limited.client.get("/apps/shop").json()
    assert info["limits"]["web"] == "memory=512m cpus=1 pids=1024"


@pytest.mark.parametrize("body", [
    {"process": "web", "limits": ["memory=lots"]},
    {"process": "web", "limits": []},
    {"process": "Web!", "limits": ["memory=512m"]},
    {"process": "web", "limits": "memory=512m"},
    {"limits": ["memory=512m"]},
])
def test_bad_limits_are_refused_and_change_nothing(limited: World, body) -> None:
    answer = limited.client.post("/apps/shop/limits", json=body)
    assert answer.status_code == 400 and "\n" not in answer.json()["error"]
    assert limited.services.limits is not None
    assert limited.services.limits.of("shop") == {}
