"""Hand-written fakes of the engine, the builder and the proxy for the deploy tests,
and `World`: a deployer over them with real SQLite stores in a temp dir.

The fake engine's web "containers" are real HTTP servers on loopback, so health checks
probe for real. `world_in` builds a world and closes its database however the test ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from agent.build import BuildRequest, BuiltImage, CodeBase
from agent.config import Config, DeploySettings
from agent.deploy.loghistory import LogHistory
from agent.deploy.orchestrator import Deployer
from agent.deploy.output import DeployOutput
from agent.deploy.plan import ContainerSpec
from agent.deploy.rollout import Rollout
from agent.deploy.runtime import Container, LogLine
from agent.paths import PathSettings
from agent.proxy import RouteOptions, Upstream
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore
from agent.store.schema import SCHEMA

PASSWD = "root:x:0:0:root:/root:/bin/bash\nberth:x:999:998::/home/berth:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\nberth:x:998:\n"


BASE = "sha256:base"


async def answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, body: bytes
) -> None:
    """A fake instance's answer to one request; a probe cancelled mid-request hangs up
    before its request is whole, and the socket is closed all the same."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, len(body), body))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@dataclass
class FakeContainer:
    spec: ContainerSpec
    id: str
    state: str = "running"
    server: asyncio.AbstractServer | None = None
    oom_killed: bool = False
    memory_limit: int | None = None


class FakeRuntime:
    """Web instances are real HTTP servers answering `status` with `body`."""

    def __init__(self) -> None:
        self.containers_by_id: dict[str, FakeContainer] = {}
        self.ids = itertools.count(1)
        self.status = 200
        self.body = b"ok"
        self.release_exit = 0
        self.images: set[str] = set()
        self.fail_after: int | None = None  # refuse starts once this many containers exist
        self.stop_delay = 0.0  # seconds an instance takes to exit after SIGTERM
        self.one_offs: list[ContainerSpec] = []
        self.tail = ["fake log line"]  # what every container's log ends with
        self.networks_removed: list[str] = []
        self.leftovers_removed: list[str] = []
        # A real process whose sockets stand for every instance's (agent.deploy.listeners);
        # with one, web instances serve nothing on their published port.
        self.process: int | None = None

    def _view(self, c: FakeContainer) -> Container:
        return Container(id=c.id, name=c.spec.name, state=c.state, labels=dict(c.spec.labels),
                         host_port=c.spec.publish_port, oom_killed=c.oom_killed,
                         memory_limit=c.memory_limit,
                         pid=self.process)

    async def start(self, spec: ContainerSpec) -> Container:
        if self.fail_after is not None and len(self.containers_by_id) >= self.fail_after:
            from agent.deploy.docker_runtime import RuntimeFailure
            raise RuntimeFailure(f"create {spec.name}", "no space left on device")
        container = FakeContainer(spec, f"c{next(self.ids)}")
        if spec.publish_port is not None and self.process is None:
            container.server = await asyncio.start_server(self._answer, "127.0.0.1",
                                                          spec.publish_port)
        self.containers_by_id[container.id] = container
        return self._view(container)

    async def create(self, spec: ContainerSpec) -> str:
        if self.fail_after is not None and len(self.containers_by_id) >= self.fail_after:
            from agent.deploy.docker_runtime import RuntimeFailure
            raise RuntimeFailure(f"create {spec.name}", "no space left on device")
        container = FakeContainer(spec, f"c{next(self.ids)}", state="created")
        self.containers_by_id[container.id] = container
        return container.id

    async def start_created(self, spec: ContainerSpec, container_id: str) -> Container:
        container = self.containers_by_id[container_id]
        if spec.publish_port is not None and self.process is None:
            container.server = await asyncio.start_server(self._answer, "127.0.0.1",
                                                          spec.publish_port)
        container.state = "running"
        return self._view(container)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, self.status, self.body)

    async def containers(self, app: str | None = None) -> list[Container]:
        return [self._view(c) for c in self.containers_by_id.values()
                if app is None or c.spec.labels.get("berth.app") == app]

    async def get(self, container_id: str) -> Container | None:
        c = self.containers_by_id.get(container_id)
        return self._view(c) if c else None

    async def published_ports(self) -> set[int]:
        return {c.spec.publish_port for c in self.containers_by_id.values() if c.spec.publish_port}

    async def stop(self, container_id: str, timeout: float) -> None:
        self.containers_by_id[container_id].state = "exited"

    async def start_existing(self, container_id: str) -> None:
        self.containers_by_id[container_id].state = "running"

    async def remove(self, container_id: str, timeout: float) -> None:
        await asyncio.sleep(self.stop_delay)
        container = self.containers_by_id.pop(container_id, None)
        if container and container.server:
            container.server.close()
            await container.server.wait_closed()

    async def run_once(self, spec: ContainerSpec, timeout: float,
                       emit: Callable[[str], None]) -> int:
        self.one_offs.append(spec)
        emit(f"ran {' '.join(spec.command)}")
        return self.release_exit

    async def logs_tail(self, container_id: str, lines: int) -> list[str]:
        return list(self.tail)

    async def logs(self, containers: list[Container], *, follow: bool,
                   tail: int) -> AsyncIterator[LogLine]:
        for container in containers:
            dyno = container.instance.dyno if container.instance else container.name
            yield LogLine(dyno, "2026-11-27T01:00:00Z", f"{container.name} shutting down",
                          container.release)

    async def remove_image(self, reference: str) -> None:
        self.images.discard(reference)

    async def remove_network(self, app: str) -> None:
        self.networks_removed.append(app)

    async def remove_build_leftovers(self, app: str) -> None:
        self.leftovers_removed.append(app)

    async def remove_app_images(self, app: str) -> None:
        self.images = {i for i in self.images if not i.startswith(f"berth/{app}:")}

    async def image_exists(self, reference: str) -> bool:
        return True

    async def close(self) -> None:
        for container in list(self.containers_by_id.values()):
            await self.remove(container.id, 0)


class FakeBuilder:
    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime
        self.fail = False

    async def build(self, request: BuildRequest, emit: Callable[[str], None],
                    on_base: Callable[[CodeBase], None] | None = None) -> BuiltImage:
        emit("building")
        if self.fail:
            from agent.build import BuildFailed
            raise BuildFailed(request.app, "RUN pip install", "exit code 1", ("no such package",))
        self.runtime.images.add(request.tag)
        return BuiltImage(image_id=f"sha256:{request.tag}", tag=request.tag, builder="python",
                          default_processes={"web": "gunicorn app"}, duration=0.1)


@dataclass
class FakeRouter:
    routes: dict[str, tuple[list[str], tuple[Upstream, ...]]] = field(default_factory=dict)
    swaps: list[tuple[str, tuple[Upstream, ...]]] = field(default_factory=list)

    def set_route(self, name: str, hosts: Sequence[str], upstreams: Sequence[Upstream],
                  options: RouteOptions = RouteOptions()) -> None:
        self.routes[name] = (list(hosts), tuple(upstreams))

    async def swap(self, name: str, upstreams: Sequence[Upstream], drain_timeout: float) -> Any:
        self.routes[name] = (self.routes[name][0], tuple(upstreams))
        self.swaps.append((name, tuple(upstreams)))

    async def remove_route(self, name: str, drain_timeout: float) -> None:
        self.routes.pop(name, None)


class EarlyRuntime(FakeRuntime):
    """The fake engine, plus what an early start asks of it; `events` in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.parents: dict[str, str] = {}
        self.missing: set[str] = set()
        self.codes: dict[str, bytes] = {}  # container id -> the tree put into it
        self.broken_images: set[str] = set()  # their instances answer 500
        self.create_delay = 0.0
        self.unreadable = False

    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]:
        if self.unreadable:
            from agent.deploy.docker_runtime import RuntimeFailure
            raise RuntimeFailure("read files of base", "no such container")
        return {"/etc/passwd": PASSWD.encode(), "/etc/group": GROUP.encode()}

    async def image_parent(self, reference: str) -> str:
        return self.parents.get(reference, "")

    async def image_exists(self, reference: str) -> bool:
        return reference not in self.missing

    async def start(self, spec: ContainerSpec) -> Container:
        return await self.start_created(spec, await self.create(spec))

    async def create(self, spec: ContainerSpec) -> str:
        # Like docker-py in a worker thread: a cancelled caller does not stop the engine.
        return await asyncio.shield(self._create(spec))

    async def _create(self, spec: ContainerSpec) -> str:
        self.events.append(f"create {spec.image}")
        await asyncio.sleep(self.create_delay)
        container_id = await super().create(spec)
        if spec.code is not None:
            self.codes[container_id] = spec.code.read_bytes()
        return container_id

    async def start_created(self, spec: ContainerSpec, container_id: str) -> Container:
        self.events.append(f"start {spec.image}")
        if spec.image not in self.broken_images or spec.publish_port is None:
            return await super().start_created(spec, container_id)

        async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await answer(reader, writer, 500, b"")

        container = self.containers_by_id[container_id]
        container.server = await asyncio.start_server(broken, "127.0.0.1", spec.publish_port)
        container.state = "running"
        return self._view(container)


class EarlyBuilder(FakeBuilder):
    """Announces `base` as its last step begins, then takes `commit` seconds."""

    def __init__(self, runtime: EarlyRuntime) -> None:
        super().__init__(runtime)
        self.early = runtime
        self.base: str | None = BASE
        self.commit = 0.2
        self.parent: str | None = None  # the built image's parent (default: the base)
        self.slow: dict[str, float] = {}  # app -> seconds until the base is announced

    async def build(self, request: BuildRequest, emit: Callable[[str], None],
                    on_base: Callable[[CodeBase], None] | None = None) -> BuiltImage:
        emit("building")
        await asyncio.sleep(self.slow.get(request.app, 0.05))
        if on_base is not None and self.base is not None:
            self.early.events.append(f"announce {self.base}")
            on_base(CodeBase(self.base, "python", {"web": "gunicorn app"}))
        await asyncio.sleep(self.commit)
        built = await super().build(request, emit)
        self.early.parents[built.image_id] = self.parent or self.base or ""
        self.early.events.append(f"built {built.image_id}")
        emit("built")
        return built


def lines() -> tuple[DeployOutput, list[str]]:
    seen: list[str] = []
    return DeployOutput(seen.append), seen


@dataclass
class World:
    """A deployer over the fakes, and what a test looks at."""

    db: Database
    runtime: FakeRuntime
    router: FakeRouter
    builder: FakeBuilder
    apps: AppStore
    releases: ReleaseStore
    history: LogHistory
    config: Config
    rollout: Rollout
    deployer: Deployer
    source: Path

    def deployer_with(self, **deploy: Any) -> Deployer:
        """Another deployer over the same engine, proxy, roll-out and stores, with
        these deploy settings changed (a configuration edited between two pushes)."""
        config = replace(self.config, deploy=replace(self.config.deploy, **deploy))
        return Deployer(config, self.apps, self.releases, EventStore(self.db), self.runtime,
                        self.builder, self.rollout)


DEPLOY = DeploySettings(domain="example.test", health_interval=0.05, health_timeout=3,
                        settle_time=0.01)


@contextmanager
def world_in(
    tmp_path: Path, runtime: FakeRuntime | None = None, builder: FakeBuilder | None = None,
    **deploy: Any,
) -> Iterator[World]:
    """A world whose deploy settings are DEPLOY with `deploy` changed; its database is
    closed at the end. (The fake instances' servers live on the test's own event loop:
    the test closes them, `await world.runtime.close()`, before its loop ends.)"""
    db = Database.open(tmp_path / "berth.db", [SCHEMA])
    runtime = runtime or FakeRuntime()
    router = FakeRouter()
    config = Config(paths=PathSettings(data_dir=tmp_path / "data"),
                    deploy=replace(DEPLOY, **deploy))
    apps, releases, events = AppStore(db), ReleaseStore(db), EventStore(db)
    builder = builder or FakeBuilder(runtime)
    history = LogHistory(tmp_path / "logs")
    rollout = Rollout(runtime, router, config.deploy, history)
    deployer = Deployer(config, apps, releases, events, runtime, builder, rollout)
    source = tmp_path / "src"
    source.mkdir()
    (source / "Procfile").write_text("web: gunicorn app\nworker: python w.py\n")
    try:
        yield World(db=db, runtime=runtime, router=router, builder=builder, apps=apps,
                    releases=releases, history=history, config=config, rollout=rollout,
                    deployer=deployer, source=source)
    finally:
        db.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world for one test (the deploy tests get it through their conftest)."""
    with world_in(tmp_path) as built:
        yield built


@pytest.fixture
def early(tmp_path: Path) -> Iterator[World]:
    """A world whose engine and builder also do what an early start asks of them."""
    runtime = EarlyRuntime()
    with world_in(tmp_path, runtime, EarlyBuilder(runtime)) as built:
        yield built
