"""Real add-ons for the tests (imported by name: a conftest.py here would shadow
another directory's `conftest` module): an `AddonService` over the real Docker engine with the
stand-in postgres and redis images, a temp data dir, a real state database, and a
releaser that stores config as the deploy's config path does for an app not deployed.
Each test's containers and network are removed after it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import pytest

from agent.addons.engine import AddonEngine
from agent.addons.service import AddonService
from agent.addons.settings import AddonSettings
from agent.addons.store import SCHEMA as ADDONS_SCHEMA
from agent.addons.store import AddonStore
from agent.backups.service import BackupService
from agent.backups.store import SCHEMA as BACKUPS_SCHEMA
from agent.backups.store import BackupStore
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.services.config import ConfigVars
from agent.services.configvars import ConfigChange
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.schema import SCHEMA
from tests.engine_cleanup import remove_installation

STAND_IN_SETTINGS = AddonSettings(postgres_image="berth-stand-in/postgres:{version}",
                                  redis_image="berth-stand-in/redis:{version}",
                                  postgres_version="15", redis_version="7",
                                  start_timeout=90.0, stop_timeout=20.0)

# The `-alpine` stand-ins: the same images with busybox's `timeout` in place of
# coreutils' (tests/support/stand-in/busybox-timeout/).
BUSYBOX_SETTINGS = replace(STAND_IN_SETTINGS,
                           postgres_image="berth-stand-in/postgres:{version}-alpine",
                           redis_image="berth-stand-in/redis:{version}-alpine")
_BUSYBOX_DOCKERFILE = Path(__file__).parents[1] / "support" / "stand-in" / "busybox-timeout"


def ensure_busybox_images() -> None:
    """Built by tests/support/stand-in-images.sh; built here when one is missing."""
    for kind, version in (("postgres", "15"), ("redis", "7")):
        tag = f"berth-stand-in/{kind}:{version}-alpine"
        if subprocess.run(["docker", "image", "inspect", tag], capture_output=True,
                          timeout=60, check=False).returncode != 0:
            subprocess.run(["docker", "build", "-q", "--build-arg",
                            f"BASE=berth-stand-in/{kind}:{version}", "-t", tag,
                            str(_BUSYBOX_DOCKERFILE)], check=True, capture_output=True,
                           timeout=600)


class StoringReleaser:
    """The deploy's config path: the change is stored (or, told to fail, refused as a
    failed release phase would be), and the output settled as a release going live
    settles it (which must not end a longer operation's stream early)."""

    def __init__(self, apps: AppStore) -> None:
        self.apps = apps
        self.fail = False

    async def release_config(self, app_name: str, change: ConfigChange,
                             out: DeployOutput) -> Any:
        if self.fail:
            raise BerthError("release phase failed")
        self.apps.change_config(app_name, change, strict=False)
        out.settle({"release": 0})
        return None


class FakeInstances:
    """An app's instances as a restore sees them: running, stopped, started again."""

    def __init__(self) -> None:
        self.up = True
        self.calls: list[str] = []

    def hold(self, app: str, out: DeployOutput) -> AbstractAsyncContextManager[None]:
        self.calls.append("hold")
        return nullcontext()

    def running(self, app: str) -> bool:
        return self.up

    async def stop(self, app: str, out: DeployOutput) -> None:
        self.calls.append("stop")
        self.up = False

    async def start(self, app: str, out: DeployOutput) -> None:
        self.calls.append("start")
        self.up = True


class World:
    def __init__(self, tmp: Path) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.db = Database.open(tmp / "berth.db", [SCHEMA, ADDONS_SCHEMA, BACKUPS_SCHEMA])
        self.apps, self.events = AppStore(self.db), EventStore(self.db)
        self.releaser = StoringReleaser(self.apps)
        self.client = docker.from_env(timeout=120)
        self.engine = AddonEngine(self.client, f"test-{self.tag}")
        # App names of this test alone: their networks and containers are theirs.
        self.shop, self.cache = f"shop-{self.tag}", f"cache-{self.tag}"
        self.data_dir = tmp / "data"
        self.service = AddonService(
            settings=STAND_IN_SETTINGS, data_dir=self.data_dir, restart_policy="unless-stopped",
            store=AddonStore(self.db), engine=self.engine, apps=self.apps, events=self.events,
            config=ConfigVars(self.apps, self.events, self.releaser))
        self.backups = BackupService(self.service, BackupStore(self.db), self.events)
        self.instances = FakeInstances()
        self.lines: list[str] = []

    def out(self) -> DeployOutput:
        return DeployOutput(self.lines.append)

    def client_run(self, *argv: str, image: str = "berth-stand-in/postgres:15",
                   env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A throwaway client container on the app's network (as the app would be);
        labelled with the test's installation, so cleanup takes it even if it outlives a
        timed-out `docker run`."""
        flags = [f"-e{k}={v}" for k, v in (env or {}).items()]
        flags.append(f"--label=berth.managed=test-{self.tag}")
        return subprocess.run(
            ["docker", "run", "--rm", "--network", self._network_of(argv), *flags, "--entrypoint",
             argv[0], image, *argv[1:]], capture_output=True, text=True, timeout=120, check=False)

    def _network_of(self, argv: tuple[str, ...]) -> str:
        """The network of the add-on the command names (by URL or host name)."""
        for word in argv:
            host = urlsplit(word).hostname if "://" in word else word
            if host and host.startswith("berth-addon-"):
                networks = self.client.api.inspect_container(host)["NetworkSettings"]["Networks"]
                return str(next(iter(networks)))
        raise AssertionError(f"no add-on named in {argv}")

    def psql(self, url: str, sql: str) -> str:
        answer = self.client_run("psql", f"{url}?sslmode=require", "-v", "ON_ERROR_STOP=1",
                                 "-Atc", sql)
        assert answer.returncode == 0, answer.stderr
        return answer.stdout.strip()

    def redis(self, url: str, *words: str) -> str:
        answer = self.client_run("redis-cli", "--no-auth-warning", "-u", url, *words,
                                 image="berth-stand-in/redis:7")
        assert answer.returncode == 0, answer.stderr
        return answer.stdout.strip()

    def close(self) -> None:
        """Everything the test made on the engine goes, even if a step of it failed."""
        try:
            left = remove_installation(self.client.api, f"test-{self.tag}")
            assert not left, f"networks still in use after the test: {left}"
        finally:
            self.db.close()
            self.client.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()
