"""An in-process control API over real stores in a temp dir and a real Deployer whose
containers, builder and rollout are inert (nothing here deploys: the operations tested
are those that never reach Docker, or a test brings its own small fake)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from agent.api.app import build_api
from agent.api.services import Services
from agent.config import Config, DeploySettings, SshSettings
from agent.deploy.orchestrator import Deployer
from agent.deploy.rollout import Rollout
from agent.paths import PathSettings
from agent.proxy.errors import RouteNotFound
from agent.store.apps import AppStore
from agent.store.audit import AuditStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.keys import KeyStore
from agent.store.releases import ReleaseStore
from agent.store.schema import SCHEMA


class InertRuntime:
    """No containers at all (nothing here deploys)."""

    async def containers(self, app: str | None = None) -> list[Any]:
        return []

    async def remove_image(self, tag: str) -> None:
        return None

    async def remove_app_images(self, app: str) -> None:
        return None

    async def remove_build_leftovers(self, app: str) -> None:
        return None

    async def remove_network(self, app: str) -> None:
        return None


class NoRoutes:
    """A router that never had a route (no app here is deployed)."""

    def set_route(self, name: str, hosts: Any, upstreams: Any, options: Any = None) -> None:
        return None

    async def swap(self, name: str, upstreams: Any, drain_timeout: float) -> None:
        return None

    async def remove_route(self, name: str, drain_timeout: float) -> None:
        raise RouteNotFound(name)


@dataclass
class World:
    client: TestClient
    services: Services
    db: Database

    def stream(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """An NDJSON operation's events."""
        import json

        response = self.client.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines() if line]


def make_config(tmp_path: Path) -> Config:
    return Config(
        # The control socket in the test's own directory: under the default /run/berth,
        # test runs side by side (or a real agent) would answer each other's CLI.
        paths=PathSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run"),
        ssh=SshSettings(user="root", authorized_keys=tmp_path / "authorized_keys"),
        deploy=DeploySettings(domain="apps.example.test"),
    )


def make_services(tmp_path: Path, certificates: Any = None, schemas: Any = (SCHEMA,),
                  certificates_for: Callable[[Database], Any] | None = None,
                  ) -> tuple[Services, Database]:
    """Real stores in `tmp_path` and a real Deployer whose containers are inert.

    `certificates_for` makes the certificate manager over the database opened here (as
    the daemon does); it is handed to the deployer and the services alike."""
    config = make_config(tmp_path)
    db = Database.open(tmp_path / "berth.db", schemas)
    if certificates_for is not None:
        certificates = certificates_for(db)
    apps, releases, events = AppStore(db), ReleaseStore(db), EventStore(db)
    runtime: Any = InertRuntime()
    rollout = Rollout(runtime, router=NoRoutes(), settings=config.deploy)
    deployer = Deployer(config, apps, releases, events, runtime, builder=None, rollout=rollout,
                        certificates=certificates)
    services = Services(config=config, apps=apps, releases=releases, events=events,
                        keys=KeyStore(db), deployer=deployer, runtime=runtime,
                        ssh_command="berth", audit=AuditStore(db))
    if certificates_for is not None:
        services.certificates = certificates
    return services, db


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    services, db = make_services(tmp_path)
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        yield World(client, services, db)
    db.close()


@pytest.fixture
def agent_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Database]]:
    services, db = make_services(tmp_path)
    services.app_service().create("shop")
    with serving(services, db, tmp_path) as env:
        yield env, db


@contextmanager
def serving(services: Services, db: Database, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The API on its unix socket, in a thread; the environment a `berth` CLI run needs
    to reach it. The database is closed afterwards."""
    try:
        with listening(services, tmp_path) as environ:
            yield environ
    finally:
        db.close()


@contextmanager
def listening(services: Services, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The API on its unix socket, in a thread, until the block ends; the environment a
    `berth` CLI run needs to reach it (its configuration written into `tmp_path`)."""
    socket = services.config.paths.control_socket
    socket.parent.mkdir(parents=True, exist_ok=True)
    server = uvicorn.Server(uvicorn.Config(build_api(services), uds=str(socket),
                                           log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    config = tmp_path / "berth.toml"
    config.write_text(f'[paths]\ndata_dir = "{services.config.paths.data_dir}"\n'
                      f'run_dir = "{socket.parent}"\n')
    try:
        yield {"BERTH_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    finally:
        server.should_exit = True
        thread.join(timeout=20)
