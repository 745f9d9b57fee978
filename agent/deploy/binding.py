"""Whether a new instance can still pass its check: running, and listening where the
proxy reaches it.

While a web instance's health check fails, `BindingWatch.problem` is asked now and then:
an instance that exited (or was restarted by its policy) fails the check at once; one
that listens, but only on 127.0.0.1 or on another port than $PORT, fails it once that
has lasted GRACE seconds (an app may open another socket first while it boots), with a
line naming what it listens on (agent.deploy.listeners). A check that fails anyway says
which command ran, the port expected and the ports the instance listens on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from agent.deploy import listeners
from agent.deploy.listeners import Listener
from agent.deploy.runtime import Container

GRACE = 5.0  # seconds a wrong binding must last before the check fails


class Inspector(Protocol):
    async def get(self, container_id: str) -> Container | None: ...


async def exited(runtime: Inspector, started: Container) -> str | None:
    """Why the instance `started` is gone (exited, restarted, removed), or None."""
    return gone(await runtime.get(started.id), started)


def gone(now: Container | None, started: Container) -> str | None:
    if now is None:
        return "container disappeared"
    if now.state in ("exited", "dead") or now.restart_count > started.restart_count:
        code = f" with code {now.exit_code}" if now.exit_code is not None else ""
        return f"exited{code}"
    return None


class BindingWatch:
    """One web instance, watched while its check fails."""

    def __init__(
        self, runtime: Inspector, started: Container, port: int, *, grace: float = GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._started = started
        self._port = port
        self._grace = grace
        self._clock = clock
        self._wrong_since: float | None = None
        self.listening: list[Listener] | None = None  # as last read, if it could be

    async def problem(self) -> str | None:
        """Why the check cannot pass any more, or None."""
        now = await self._runtime.get(self._started.id)
        reason = gone(now, self._started)
        if reason is not None or now is None or now.pid is None:
            return reason
        self.listening = await asyncio.to_thread(listeners.read, now.pid)
        wrong = listeners.misbound(self.listening or [], self._port)
        if wrong is None:
            self._wrong_since = None
            return None
        if self._wrong_since is None:
            self._wrong_since = self._clock()
        return wrong if self._clock() - self._wrong_since >= self._grace else None

    def explain(self, command: str) -> str:
        """Lines for a failed check: the command that ran, then the port expected and
        what it listens on (that line only when the sockets could be read: an instance
        that exited first has none)."""
        text = f"\ncommand: {command or 'the image CMD'}"
        if self.listening is None:
            return text
        return (f"{text}\nexpected to listen on 0.0.0.0:{self._port} ($PORT); listening on: "
                f"{listeners.describe(self.listening)}")
