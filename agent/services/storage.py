"""An app's persistent storage: mounting or unmounting a container path, then restarting
the live release (zero downtime) unless told not to; a failed restart undoes the change."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from agent import storage as persistent
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.store.apps import AppStore
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore


class Restarter(Protocol):
    async def restart(self, app_name: str, out: DeployOutput) -> None: ...


class Storage:
    """The one owner of storage mounts and their StorageMounted/StorageUnmounted events."""

    def __init__(self, root: Path, apps: AppStore, releases: ReleaseStore,
                 events: EventStore, deployer: Restarter) -> None:
        self._root = root
        self._apps = apps
        self._releases = releases
        self._events = events
        self._deployer = deployer

    def mounts(self, app: str) -> list[tuple[str, Path]]:
        """(container path, host directory) of each of the app's mounts."""
        return [(path, persistent.host_dir(self._root, app, path))
                for path in self._apps.mounts(app)]

    def change(self, app: str, path: str, *, mount: bool) -> str:
        """Store the change at once (refused if it makes no sense); the checked path."""
        path = persistent.check_mount_path(path)
        if mount:
            self._apps.add_mount(app, path)
        else:
            self._apps.remove_mount(app, path)
        return path

    async def apply(self, app: str, path: str, out: DeployOutput, *, mount: bool,
                    restart: bool) -> None:
        """After `change`: restart the live release to apply it (undone if that fails)."""
        if mount:
            out.heading(f"{path} of {app} is kept in {persistent.host_dir(self._root, app, path)}")
        else:
            out.heading(f"{path} of {app} is no longer mounted (its data stays on disk)")
        deployed = self._releases.live(app) is not None
        if restart and deployed and not self._apps.get(app).stopped:
            try:
                await self._deployer.restart(app, out)
            except BaseException:
                self._undo(app, path, mount=mount)
                raise
        elif deployed:
            out.heading(f"Takes effect at the next deploy or berth ps:restart {app}")
        self._events.record(app, "StorageMounted" if mount else "StorageUnmounted", path)

    def _undo(self, app: str, path: str, *, mount: bool) -> None:
        try:
            if mount:
                self._apps.remove_mount(app, path)
            else:
                self._apps.add_mount(app, path)
        except BerthError:  # changed again meanwhile: leave that change be
            pass
