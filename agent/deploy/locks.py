"""One operation per app at a time: each app's lock.

A second operation on an app (push, config change, scale, restart, ...) waits for the
first and says so on its output; different apps never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent.deploy.output import DeployOutput


class AppLocks:
    """The apps' locks, made on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, app: str, out: DeployOutput) -> AsyncIterator[None]:
        """Hold `app`'s lock, saying so on `out` when it must wait for it."""
        lock = self._locks.setdefault(app, asyncio.Lock())
        if lock.locked():
            out.heading(f"Waiting for the operation in progress on {app} to finish")
        async with lock:
            yield

    def held(self, app: str) -> bool:
        lock = self._locks.get(app)
        return lock is not None and lock.locked()

    def forget(self, app: str) -> None:
        """The app is gone (apps:destroy)."""
        self._locks.pop(app, None)
