"""Carrying redis add-ons whose data is still RDB only over to their AOF, in the
background.

The switch (agent.addons.persistence.switch_on) may take as long as a capture. It runs
as a task of its own, one per add-on, outside the reconciler's lock: the other add-ons'
reconciliation and a `quiet()` on another add-on never wait for it; a `quiet()` on this
add-on waits for it to end (`settled`). A switch that failed is not tried again before
its backoff has passed (a minute, doubling up to an hour), so a redis that cannot write
its AOF is not asked to on every pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from agent.addons.model import Addon

log = logging.getLogger(__name__)

FIRST_BACKOFF = 60.0
LAST_BACKOFF = 3600.0


class AofCarryOver:
    def __init__(self, switch: Callable[[Addon], Awaitable[None]], *,
                 first_backoff: float = FIRST_BACKOFF, last_backoff: float = LAST_BACKOFF,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._switch = switch
        self._first, self._last = first_backoff, last_backoff
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, tuple[int, float]] = {}  # container -> (failures, retry at)

    def start(self, addon: Addon) -> bool:
        """The switch of `addon` begun in the background, unless one runs already or its
        backoff has not passed; whether it began."""
        container = addon.container
        failures, retry_at = self._failed.get(container, (0, 0.0))
        if container in self._running or self._clock() < retry_at:
            return False
        task = asyncio.create_task(self._run(addon, failures),
                                   name=f"aof-carry-over {container}")
        self._running[container] = task
        return True

    async def settled(self, container: str) -> None:
        """Returns once the switch of `container` in flight, if any, has ended."""
        task = self._running.get(container)
        if task is not None:
            await asyncio.wait([task])

    async def _run(self, addon: Addon, failures: int) -> None:
        try:
            await self._switch(addon)
        except Exception as exc:  # noqa: BLE001 (a task's boundary: logged, retried)
            delay = min(self._first * 2 ** failures, self._last)
            self._failed[addon.container] = (failures + 1, self._clock() + delay)
            log.error("AOF not switched on app=%s addon=%s retry_in=%gs error=%s",
                      addon.app, addon.name, delay, exc)
        else:
            self._failed.pop(addon.container, None)
        finally:
            self._running.pop(addon.container, None)
