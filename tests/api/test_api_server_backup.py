"""Whole-server backup and restore through the control API, over real stores and real
files (no add-on, nothing deployed: the Docker side is in tests/e2e/test_server_backup.py):
an archive made on one server restores on an empty one, a server with apps is refused
before the upload, and a hostile archive changes nothing."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agent.api.app import build_api
from agent.serverbackup.service import ServerBackups
from tests.api.conftest import World, make_services


def _world(root: Path) -> Iterator[World]:
    root.mkdir()
    services, db = make_services(root)
    config = root / "berth.toml"
    config.write_text("# this server's configuration\n")
    services.server_backups = ServerBackups(
        data_dir=services.config.paths.data_dir, config_file=config, db=db,
        apps=services.apps, addons=None, backups=None, version="test")
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        yield World(client, services, db)
    db.close()


@pytest.fixture
def old(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path / "old")


@pytest.fixture
def new(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path / "new")


def _backup(world: World) -> bytes:
    events = world.stream("POST", "/server/backups")
    name = events[-1]["result"]["name"]
    response = world.client.get(f"/server/backups/{name}")
    assert response.status_code == 200
    assert not (world.services.config.paths.data_dir / "server-backups" / name).exists()
    return response.content


def _restore(world: World, archive: bytes, **query: str) -> list[dict[str, Any]]:
    response = world.client.post("/server/restore", content=archive, params=query)
    if response.status_code != 200:
        return [response.json()]
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_an_archive_restores_on_an_empty_server(old: World, new: World) -> None:
    old.services.app_service().create("shop")
    old.services.apps.replace_config("shop", {"SECRET": "s3"})
    stored = old.services.config.paths.storage / "shop" / "app%2Fdata"
    stored.mkdir(parents=True)
    (stored / "upload.bin").write_bytes(b"\x00stored\xff")
    archive = _backup(old)

    events = _restore(new, archive)
    assert events[-1].get("result") == {"apps": ["shop"], "addons": 0}, events
    assert "shop was not deployed: nothing to start" in [e.get("line", "").strip()
                                                         for e in events]
    assert new.services.apps.config("shop") == {"SECRET": "s3"}
    paths = new.services.config.paths
    assert (paths.storage / "shop" / "app%2Fdata" / "upload.bin").read_bytes() == b"\x00stored\xff"
    assert (paths.repo("shop") / "HEAD").is_file()
    assert sorted(p.name for p in paths.data_dir.iterdir() if "restore" in p.name) == []


def test_a_server_with_apps_is_refused_before_the_upload(old: World) -> None:
    old.services.app_service().create("shop")
    archive = _backup(old)
    (answer,) = _restore(old, archive)
    assert answer["error"].startswith("this server has apps (shop): restore onto a freshly")


def _hostile() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        escape = tarfile.TarInfo("storage/../../../escaped")
        escape.size = 4
        tar.addfile(escape, io.BytesIO(b"evil"))
    return buffer.getvalue()


def test_a_hostile_archive_changes_nothing(tmp_path: Path, new: World) -> None:
    mine = new.services.config.paths.storage / "kept.txt"  # the server as it was
    mine.parent.mkdir(parents=True)
    mine.write_text("kept")
    before = sorted(p.name for p in new.services.config.paths.data_dir.iterdir())
    events = _restore(new, _hostile())
    assert events[-1]["error"] == ("server archive refused: member "
                                   "'storage/../../../escaped': its path leaves the archive")
    assert sorted(p.name for p in new.services.config.paths.data_dir.iterdir()) == before
    assert not list(tmp_path.rglob("escaped"))
    assert new.services.apps.names() == [] and mine.read_text() == "kept"
