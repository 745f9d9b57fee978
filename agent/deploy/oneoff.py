"""One-off runs: a command once in a container of the live release's image.

`berth run APP CMD` (and its terminal form) runs beside deploys, without the app's lock,
like Heroku's one-off dynos: the live image is never pruned. The container gets the
app's config as stored now (a `config:set --no-restart` value included, as a restart
would see it) and its persistent storage; each run is recorded as an event.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

from agent.config import DeploySettings
from agent.deploy.errors import NothingToRelease
from agent.deploy.plan import ContainerSpec, one_off_spec
from agent.deploy.runtime import ContainerRuntime, OutputSink, Terminal
from agent.errors import BerthError
from agent.store.apps import AppStore
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore

Mounts = Callable[[str], tuple[tuple[str, str], ...]]


class OneOffs:
    """Runs one-off commands of apps' live releases."""

    def __init__(
        self, settings: DeploySettings, apps: AppStore, releases: ReleaseStore,
        events: EventStore, runtime: ContainerRuntime, mounts: Mounts,
    ) -> None:
        self._settings = settings
        self._apps = apps
        self._releases = releases
        self._events = events
        self._runtime = runtime
        self._mounts = mounts

    async def run(self, app: str, command: str, emit: Callable[[str], None]) -> int:
        """Run `command`, its output going to `emit`; its exit status (-1 past
        deploy.run_timeout)."""
        spec = self._spec(app, command, tty=False)
        return await self._runtime.run_once(spec, self._settings.run_timeout, emit)

    async def stream(self, app: str, command: str, sink: OutputSink) -> int:
        """`run` with every byte of stdout and stderr to `sink`, at the sink's pace."""
        spec = self._spec(app, command, tty=False)
        return await self._runtime.run_streamed(spec, self._settings.run_timeout, sink)

    async def attach(
        self, app: str, command: str, size: tuple[int, int], terminal: Terminal
    ) -> int:
        """`run` with a terminal: the container gets a tty and `terminal`'s keystrokes;
        its exit status (-1 past deploy.run_timeout, 129 when the terminal went away)."""
        spec = self._spec(app, command, tty=True)
        return await self._runtime.run_attached(spec, size, self._settings.run_timeout, terminal)

    def _spec(self, app: str, command: str, *, tty: bool) -> ContainerSpec:
        """The container of a one-off run of `command`, recorded as an event."""
        if not command.strip():
            raise BerthError("nothing to run: give a command, e.g. berth run APP python manage.py migrate")
        self._apps.get(app)
        live = self._releases.live(app)
        if live is None:
            raise NothingToRelease(app)
        current = replace(live, config=self._apps.config(app))
        spec = one_off_spec(current, command, secrets.randbelow(9000) + 1000,
                            secrets.token_hex(3), container_port=self._settings.container_port,
                            mounts=self._mounts(app), tty=tty)
        terminal = " (terminal)" if tty else ""
        self._events.record(app, "OneOffRun", f"{live.version}: {command}{terminal}")
        return spec
