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
from tests.api.conftest import World, listening, make_config, make_services


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
    account = old.services.config.paths.certs / "accounts" / "account.json"
    account.parent.mkdir(parents=True)
    account.write_text('{"key": "the ACME account"}')
    archive = _backup(old)

    events = _restore(new, archive)
    assert events[-1].get("result") == {"apps": ["shop"], "addons": 0}, events
    assert "shop was not deployed: nothing to start" in [e.get("line", "").strip()
                                                         for e in events]
    assert new.services.apps.config("shop") == {"SECRET": "s3"}
    paths = new.services.config.paths
    assert (paths.storage / "shop" / "app%2Fdata" / "upload.bin").read_bytes() == b"\x00stored\xff"
    assert (paths.repo("shop") / "HEAD").is_file()
    assert (paths.certs / "accounts" / "account.json").read_text() == '{"key": "the ACME account"}'
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, dict[str, str]]]:
    """A world whose API listens on its real control socket, for the CLI."""
    import os
    import sys

    root = Path(__file__).resolve().parents[2]
    for world in _world(tmp_path / "served"):
        with listening(world.services, tmp_path) as environ:
            yield world, {**environ, "PYTHON": sys.executable, "PYTHONPATH":
                          f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _cli(environ: dict[str, str], *args: str) -> Any:
    import subprocess

    return subprocess.run([environ["PYTHON"], "-m", "agent", *args], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_streams_the_archive_both_ways(served: tuple[World, dict[str, str]],
                                               tmp_path: Path) -> None:
    import os

    world, environ = served
    world.services.app_service().create("shop")
    stored = world.services.config.paths.storage / "shop" / "app%2Fdata"
    stored.mkdir(parents=True)
    big = os.urandom(6 * 1024 * 1024)  # more than the sockets hold: the upload streams
    (stored / "big.bin").write_bytes(big)
    target = tmp_path / "server.tar"
    made = _cli(environ, "backup", "--output", str(target))
    assert made.returncode == 0, made.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    assert "Writing the archive" in made.stderr and made.stdout == ""

    refused = _cli(environ, "restore", str(target))
    assert refused.returncode == 1
    assert refused.stderr == ("error: this server has apps (shop): restore onto a freshly "
                              "installed Berth, or pass --force to replace them\n")

    (stored / "big.bin").write_bytes(b"changed after the backup")
    forced = _cli(environ, "restore", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "The server's previous data is kept in" in forced.stdout
    assert (stored / "big.bin").read_bytes() == big


def test_force_replaces_the_apps_and_keeps_the_previous_data(old: World, new: World) -> None:
    old.services.app_service().create("shop")
    archive = _backup(old)
    new.services.app_service().create("other")
    mine = new.services.config.paths.storage / "other" / "app%2Fdata" / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("the other app's file")

    events = _restore(new, archive, force="1")
    assert events[-1].get("result") == {"apps": ["shop"], "addons": 0}, events
    assert new.services.apps.names() == ["shop"]
    lines = [e.get("line", "") for e in events]
    assert "-----> Removing other, which the archive does not hold" in lines
    (kept,) = [line for line in lines if "previous data is kept in" in line]
    previous = Path(kept.split(" kept in ", 1)[1].split(":", 1)[0])
    assert (previous / "storage/other/app%2Fdata/mine.txt").read_text() == "the other app's file"
    assert not mine.exists()


def _with_certificates(root: Path) -> Iterator[tuple[World, Any]]:
    """A world whose deployer and API have a real certificate manager (ACME off) serving
    into the proxy's real certificate store."""
    from agent.certs.manager import CertificateManager
    from agent.certs.state import SCHEMA as CERTIFICATES_SCHEMA
    from agent.config import AcmeSettings
    from agent.proxy.certs import CertificateStore
    from agent.proxy.challenges import ChallengeTokens
    from agent.store.schema import SCHEMA

    root.mkdir()
    served = CertificateStore()
    services, db = make_services(
        root, schemas=(SCHEMA, CERTIFICATES_SCHEMA),
        certificates_for=lambda db: CertificateManager(
            AcmeSettings(enabled=False), make_config(root).paths.certs, db, ChallengeTokens(),
            served))
    services.server_backups = ServerBackups(
        data_dir=services.config.paths.data_dir, config_file=None, db=db,
        apps=services.apps, addons=None, backups=None, version="test")
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        yield World(client, services, db), served
    db.close()


def test_an_apps_own_certificate_is_served_again_after_a_restore(tmp_path: Path) -> None:
    import asyncio
    import time

    from tests.certs.fakes import ThrowawayCA

    names = ["shop.apps.example.test", "shop.example.com"]  # its default domain, its own
    now = time.time()
    chain, key = ThrowawayCA().issue_pair(names, now - 60, now + 86400 * 30)
    for old, _ in _with_certificates(tmp_path / "old"):
        old.services.app_service().create("shop")
        old.services.apps.add_domain("shop", "shop.example.com")
        assert old.services.certificates is not None
        old.services.certificates.set_app_domains("shop", names, acme=False)
        asyncio.run(old.services.certificates.add_custom("shop", chain, key))
        archive = _backup(old)
    for new, served in _with_certificates(tmp_path / "new"):
        assert "shop.example.com" not in served.names()
        events = _restore(new, archive)
        assert events[-1].get("result") == {"apps": ["shop"], "addons": 0}, events
        assert "shop.example.com" in served.names(), events
        assert served.context_for("shop.example.com") is not None
