"""The engine's container events as Berth values: which of its containers died, and how.

The engine's event stream (`docker events`, only this installation's containers, only
`oom` and `die`) is read in a thread and handed to the event loop. When the stream breaks (the
engine restarted, the socket dropped) it is reopened after a pause from the time of the
last event seen, so no death in between is missed; the reconciler's periodic pass stays
the safety net for anything else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import docker
import docker.errors

from agent.deploy.docker_engine import EngineClient
from agent.deploy.plan import (
    LABEL_APP,
    LABEL_INDEX,
    LABEL_MANAGED,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_ROLE,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContainerDied:
    """One of Berth's containers stopped running (killed, crashed, exited, stopped)."""

    container_id: str
    app: str
    role: str  # process, release, run
    release: int
    dyno: str  # web.1; "" for one-offs
    exit_code: int | None
    time: float  # seconds since the epoch, as the engine saw it
    oom: bool = False  # the kernel killed a process of it at its memory limit


def oom_in(event: Mapping[str, Any]) -> str | None:
    """The container an engine event says ran out of memory; None for any other event.
    (Under Docker's init the kernel kills the app, not PID 1, so the container's own
    OOMKilled flag stays false: this event is how an OOM is known.)"""
    if event.get("Type") != "container" or event.get("Action") != "oom":
        return None
    return str((event.get("Actor") or {}).get("ID") or event.get("id") or "") or None


def died_from(event: Mapping[str, Any]) -> ContainerDied | None:
    """The death an engine event reports; None for any other event."""
    if event.get("Type") != "container" or event.get("Action") != "die":
        return None
    actor = event.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    app = attributes.get(LABEL_APP, "")
    release = attributes.get(LABEL_RELEASE, "")
    process, index = attributes.get(LABEL_PROCESS, ""), attributes.get(LABEL_INDEX, "")
    code = attributes.get("exitCode", "")
    if not app or not release.isdigit():
        return None
    return ContainerDied(
        container_id=str(actor.get("ID") or event.get("id") or ""),
        app=app,
        role=attributes.get(LABEL_ROLE, ""),
        release=int(release),
        dyno=f"{process}.{index}" if process and index else "",
        exit_code=int(code) if code.lstrip("-").isdigit() else None,
        time=int(event.get("timeNano") or 0) / 1e9 or float(event.get("time") or 0),
    )


class EngineEvents(EngineClient):
    """Follows the engine's events about this installation's containers."""

    async def deaths(self, reopen_after: float = 2.0) -> AsyncIterator[ContainerDied]:
        """Every death from now on, for as long as the caller reads."""
        since = time.time()
        while True:
            async for death in self._follow(since):
                since = max(since, death.time)
                yield death
            log.warning("engine event stream ended; reopening in %g s", reopen_after)
            await asyncio.sleep(reopen_after)

    async def _follow(self, since: float) -> AsyncIterator[ContainerDied]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerDied | None] = asyncio.Queue()
        opened: list[Any] = []
        closed = threading.Event()

        def put(item: ContainerDied | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the agent is gone
                closed.set()

        def read() -> None:
            try:
                stream = self._api.events(since=since, decode=True, filters={
                    "type": ["container"], "event": ["oom", "die"],
                    "label": [f"{LABEL_MANAGED}={self._installation}"]})
                opened.append(stream)
                if closed.is_set():
                    stream.close()
                ran_out: set[str] = set()  # containers with an OOM and no death yet
                for event in stream:
                    if (oomed := oom_in(event)) is not None:
                        ran_out.add(oomed)
                    elif (death := died_from(event)) is not None:
                        if death.container_id in ran_out:
                            ran_out.discard(death.container_id)
                            death = replace(death, oom=True)
                        put(death)
            except (docker.errors.DockerException, OSError) as exc:
                log.warning("engine event stream failed error=%s", exc)
            finally:
                if not closed.is_set():
                    put(None)

        threading.Thread(target=read, name="engine-events", daemon=True).start()
        try:
            while (death := await queue.get()) is not None:
                yield death
        finally:
            closed.set()
            for stream in opened:
                stream.close()
