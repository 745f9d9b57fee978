"""Real add-ons for the tests: an `AddonService` over the real Docker engine with the
stand-in postgres and redis images, a temp data dir, a real state database, and a
releaser that stores config as the deploy's config path does for an app not deployed.
Each test's containers and network are removed after it."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import docker
import pytest

from agent.addons.engine import AddonEngine
from agent.addons.service import AddonService
from agent.addons.settings import AddonSettings
from agent.addons.store import SCHEMA as ADDONS_SCHEMA
from agent.addons.store import AddonStore
from agent.deploy.output import DeployOutput
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.schema import SCHEMA

STAND_IN_SETTINGS = AddonSettings(postgres_image="berth-stand-in/postgres:{version}",
                                  redis_image="berth-stand-in/redis:{version}",
                                  postgres_version="15", redis_version="7",
                                  start_timeout=90.0, stop_timeout=20.0)


class StoringReleaser:
    """The config path of an app that is not deployed: the config is stored."""

    def __init__(self, apps: AppStore, events: EventStore) -> None:
        self.apps = apps
        self.events = events
        self.descriptions: list[str] = []
        self.fail = False

    async def release_config(self, app_name: str, config: Mapping[str, str],
                             description: str, out: DeployOutput) -> Any:
        self.descriptions.append(description)
        if self.fail:
            from agent.errors import BerthError
            raise BerthError("release phase failed")
        self.apps.replace_config(app_name, config)
        self.events.record(app_name, "ConfigChanged", description)
        return None


class World:
    def __init__(self, tmp: Path) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.db = Database.open(tmp / "berth.db", [SCHEMA, ADDONS_SCHEMA])
        self.apps, self.events = AppStore(self.db), EventStore(self.db)
        self.releaser = StoringReleaser(self.apps, self.events)
        self.client = docker.from_env(timeout=120)
        self.engine = AddonEngine(self.client, f"test-{self.tag}")
        self.network = f"berth-test-{self.tag}"
        self.data_dir = tmp / "data"
        self.service = AddonService(
            settings=STAND_IN_SETTINGS, data_dir=self.data_dir, restart_policy="unless-stopped",
            store=AddonStore(self.db), engine=self.engine, apps=self.apps, events=self.events,
            releaser=self.releaser, network_for=lambda app: self.network)
        self.lines: list[str] = []

    def out(self) -> DeployOutput:
        return DeployOutput(self.lines.append)

    def client_run(self, *argv: str, image: str = "berth-stand-in/postgres:15",
                   env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A throwaway client container on the app's network (as the app would be)."""
        flags = [f"-e{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(
            ["docker", "run", "--rm", "--network", self.network, *flags, "--entrypoint",
             argv[0], image, *argv[1:]], capture_output=True, text=True, timeout=120)

    def close(self) -> None:
        for container in self.client.api.containers(
                all=True, filters={"label": f"berth.addon.managed=test-{self.tag}"}):
            self.client.api.remove_container(container["Id"], force=True)
        for network in self.client.api.networks(names=[self.network]):
            self.client.api.remove_network(network["Id"])
        self.db.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()
