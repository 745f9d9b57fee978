"""Removing old releases' images once nothing uses them, in the background.

After a release goes live the images beyond `deploy.keep_releases` are removed, once
the old containers using them are gone (an image still in use cannot be removed),
without holding up the push that called for it or the next one. No app lock is taken:
a release in progress keeps its image (`ReleaseStore.prunable_tags`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from agent.errors import BerthError
from agent.store.releases import ReleaseStore

log = logging.getLogger(__name__)


class ImageRemover(Protocol):
    async def remove_image(self, reference: str) -> None: ...

    async def remove_app_images(self, app: str) -> None: ...


class Retirements(Protocol):
    async def settled(self, app: str | None = None, timeout: float | None = None) -> None: ...


class ImagePruner:
    """Prunes each app's old images in background tasks it keeps track of."""

    def __init__(
        self, engine: ImageRemover, releases: ReleaseStore, retirements: Retirements,
        keep: int,
    ) -> None:
        self._engine = engine
        self._releases = releases
        self._retirements = retirements
        self._keep = keep
        self._tasks: set[asyncio.Task[None]] = set()

    def after_release(self, app: str) -> None:
        """Prune `app`'s old images once its old containers are gone."""
        task = asyncio.get_running_loop().create_task(self._prune_when_settled(app))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the pruning under way."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, timeout))

    async def remove_all(self, app: str, tags: Iterable[str]) -> None:
        """Every image of `app`, its releases' `tags` first (apps:destroy)."""
        for tag in sorted(tags):
            await self._engine.remove_image(tag)
        await self._engine.remove_app_images(app)

    async def _prune_when_settled(self, app: str) -> None:
        await self._retirements.settled(app)
        try:
            for tag in sorted(self._releases.prunable_tags(app, self._keep)):
                # Asked again for each: a rollback may have started on it meanwhile.
                if tag in self._releases.prunable_tags(app, self._keep):
                    await self._engine.remove_image(tag)
        except BerthError as exc:
            log.warning("pruning images failed app=%s error=%s", app, exc)
        except Exception:  # a background task's boundary: log it, never lose it
            log.exception("pruning images crashed app=%s", app)
