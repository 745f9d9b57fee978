"""Restoring a backup into its add-on, and verifying one in a throwaway container.

A restore first checks the file against its recorded SHA-256, then holds the app's lock
for its whole length (other operations on the app wait), stops the app's instances
(answering 503 meanwhile) and starts them again afterwards, whatever happened. Postgres
restores into a fresh database swapped in by rename, so it holds exactly the capture
(agent.backups.pgrestore); Redis gets the file while stopped, its AOF set aside, and
when it does not come back with it, its previous files are put back
(agent.backups.redisrestore). Either way a failed restore leaves the previous data in
place.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from agent.addons.containers import AddonLayout
from agent.backups import dumps, files, pgrestore, redisrestore
from agent.backups.model import Backup, RestoreFailed
from agent.backups.service import BackupService
from agent.backups.uncut import to_its_end
from agent.deploy.output import DeployOutput
from agent.errors import BerthError


class AppInstances(Protocol):
    """An app held for a restore, its instances stopped and started again meanwhile."""

    def hold(self, app: str, out: DeployOutput) -> AbstractAsyncContextManager[None]:
        """The app's operation lock: pushes, config changes, ps:start wait for it."""
        ...

    def running(self, app: str) -> bool: ...

    async def stop(self, app: str, out: DeployOutput) -> None:
        """Stop its instances (with the app held)."""
        ...

    async def start(self, app: str, out: DeployOutput) -> None:
        """Start its instances (with the app held)."""
        ...


@asynccontextmanager
async def _app_held_stopped(instances: AppInstances, app: str, out: DeployOutput
                            ) -> AsyncIterator[None]:
    """The app held for the whole restore, so no other operation on it (a push and its
    release phase, a config change, ps:start) starts instances against half-restored
    data; its instances, if it had any, are stopped and started again inside."""
    async with instances.hold(app, out):
        was_running = instances.running(app)
        try:  # a stop cut short (cancelled, failed) still ends with the app started
            if was_running:
                out.step(f"Stopping {app}'s instances for the restore")
                await instances.stop(app, out)
            yield
        finally:
            if was_running:
                out.step(f"Starting {app} again")
                await to_its_end(instances.start(app, out))


async def check_file(service: BackupService, backup: Backup) -> Path:
    path = service.path(backup)
    digest = await asyncio.to_thread(files.sha256_of, path)
    if digest != backup.sha256:
        raise RestoreFailed(f"{backup.id} is damaged: its SHA-256 is not the one recorded")
    return path


async def restore(service: BackupService, instances: AppInstances, app: str, backup_id: str,
                  out: DeployOutput) -> Backup:
    backup = service.get(app, backup_id)
    addon = service.addons.store.get(app, backup.addon)
    if addon.kind != backup.kind:
        raise RestoreFailed(f"{backup.id} is a {backup.kind} backup; {addon.name} is {addon.kind}")
    await service.ensure_local(backup, out)
    path = await check_file(service, backup)
    async with _app_held_stopped(instances, app, out):
        out.step(f"Restoring {backup.id} into {addon.name}")
        try:
            if addon.kind == "postgres":
                await pgrestore.restore_exact(
                    service.addons.engine, addon, backup.file_name,
                    timeout=service.addons.settings.restore_timeout,
                    probe_timeout=service.addons.settings.command_timeout)
            else:
                await redisrestore.restore_rdb(service.addons, addon, path)
        except BerthError as exc:
            service.events.record(app, "RestoreFailed", f"{backup.id} into {addon.name}: {exc}")
            raise
    service.events.record(app, "BackupRestored", f"{backup.id} into {addon.name}")
    out.heading(f"{addon.name} holds the data of {backup.id} again")
    return backup


async def verify(service: BackupService, app: str, backup_id: str, out: DeployOutput
                 ) -> dict[str, Any]:
    """Restore into a throwaway container of the add-on's image and ask it something."""
    backup = service.get(app, backup_id)
    addon = service.addons.store.get(app, backup.addon)
    await service.ensure_local(backup, out)
    path = await check_file(service, backup)
    out.step(f"Restoring {backup.id} into a throwaway {addon.kind} container")
    engine, limits = service.addons.engine, service.addons.settings
    with tempfile.TemporaryDirectory(prefix="berth-verify-") as scratch:
        async with service.addons.scratch_copy(addon, Path(scratch)) as copy:
            if copy.kind == "postgres":
                await pgrestore.restore_exact(engine, copy, backup.file_name,
                                              timeout=limits.restore_timeout,
                                              probe_timeout=limits.command_timeout)
                answer = await engine.exec(copy.container, [
                    "psql", "-U", copy.user, "-d", copy.user, "-Atc",
                    ("SELECT count(*) FROM information_schema.tables "
                     "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")],
                    timeout=limits.command_timeout, user="postgres")
                found = f"{answer.stdout.decode().strip()} tables"
            else:
                await engine.stop(copy.container, 10)
                await asyncio.to_thread(redisrestore.load_at_next_start, copy,
                                        AddonLayout(Path(scratch)), path)
                await engine.start(copy.container)
                await service.addons.wait_ready(copy)
                keys = await dumps.redis_command(engine, copy, "DBSIZE",
                                                 timeout=limits.command_timeout)
                found = f"{keys.strip()} keys"
    out.heading(f"{backup.id} restores: {found}")
    service.events.record(app, "BackupVerified", f"{backup.id}: {found}")
    return {"id": backup.id, "found": found}
