"""The container engine as the deploy code needs it: a Protocol and the values it returns.

The orchestrator and reconciler depend on `ContainerRuntime`, not on docker-py; the
Docker adapter (`agent.deploy.docker_runtime`) satisfies it, and unit tests can pass a
small hand-written fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.deploy.plan import (
    LABEL_APP,
    LABEL_INDEX,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_ROLE,
    ContainerSpec,
    Instance,
)


@dataclass(frozen=True)
class Container:
    """A container as the engine reports it."""

    id: str
    name: str
    state: str  # running, restarting, exited, created, paused, dead
    labels: Mapping[str, str] = field(default_factory=dict)
    host_port: int | None = None
    started_at: float | None = None
    restart_count: int = 0
    exit_code: int | None = None
    oom_killed: bool = False  # the kernel killed it for exceeding its memory limit
    pid: int | None = None  # its main process on this host, while it runs
    memory_limit: int | None = None  # bytes; None: unlimited

    @property
    def app(self) -> str:
        return self.labels.get(LABEL_APP, "")

    @property
    def release(self) -> int:
        try:
            return int(self.labels.get(LABEL_RELEASE, "0"))
        except ValueError:
            return 0

    @property
    def role(self) -> str:
        return self.labels.get(LABEL_ROLE, "")

    @property
    def instance(self) -> Instance | None:
        process = self.labels.get(LABEL_PROCESS)
        index = self.labels.get(LABEL_INDEX, "")
        if not process or not index.isdigit():
            return None
        return Instance(process, int(index))

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class LogLine:
    source: str  # dyno name, e.g. web.1
    time: str  # RFC 3339 from the engine
    text: str
    release: int = 0  # the release the instance ran (0: not known)


# Where a one-off's output goes: (1 stdout or 2 stderr, bytes); awaited before more is read.
OutputSink = Callable[[int, bytes], Coroutine[Any, Any, None]]


class Terminal(Protocol):
    """The user's terminal at the far end of an attached one-off (`berth run`)."""

    async def receive(self) -> bytes | tuple[int, int] | None:
        """Keystrokes, a new size (columns, rows), or None once the user is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """What the container's terminal printed."""
        ...


class ContainerRuntime(Protocol):
    async def start(self, spec: ContainerSpec) -> Container:
        """Create and start (`create`, then `start_created`)."""
        ...

    async def create(self, spec: ContainerSpec) -> str:
        """Create (with `spec.code` extracted), not started: the container's id."""
        ...

    async def start_created(self, spec: ContainerSpec, container_id: str) -> Container:
        """Start a created container; one that fails to start is removed."""
        ...

    async def containers(self, app: str | None = None) -> list[Container]: ...

    async def get(self, container_id: str) -> Container | None: ...

    async def published_ports(self) -> set[int]: ...

    async def stop(self, container_id: str, timeout: float) -> None: ...

    async def start_existing(self, container_id: str) -> None: ...

    async def remove(self, container_id: str, timeout: float) -> None: ...

    async def run_once(
        self, spec: ContainerSpec, timeout: float, emit: Callable[[str], None]
    ) -> int: ...

    async def run_streamed(self, spec: ContainerSpec, timeout: float, sink: OutputSink) -> int:
        """Run `spec` to completion, every byte of its output to `sink` at the sink's
        pace; its exit status (-1 past `timeout`)."""
        ...

    async def run_attached(
        self, spec: ContainerSpec, size: tuple[int, int], timeout: float, terminal: Terminal
    ) -> int:
        """Run `spec` (a tty one) with `terminal` attached until it exits; its status
        (-1 past `timeout`; killed when the terminal goes away)."""
        ...

    async def logs_tail(self, container_id: str, lines: int) -> list[str]: ...

    def logs(
        self, containers: list[Container], *, follow: bool, tail: int
    ) -> AsyncIterator[LogLine]: ...

    async def remove_image(self, reference: str) -> None: ...

    async def remove_app_images(self, app: str) -> None: ...

    async def remove_build_leftovers(self, app: str) -> None:
        """Images that builds of the app killed midway left behind."""
        ...

    async def remove_network(self, app: str) -> None:
        """The app's own network (agent.deploy.networks), once nothing uses it."""
        ...

    async def image_exists(self, reference: str) -> bool: ...

    async def image_parent(self, reference: str) -> str:
        """The image a built image was made from ("" if none is recorded)."""
        ...

    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]:
        """The contents of `paths` in `image` (missing ones left out)."""
        ...
