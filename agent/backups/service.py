"""Capturing and listing backups of an app's add-ons, and finding their files.

Backups live in data_dir/backups/APP/ (root's only), which each add-on container of the
app mounts read-only, so a restore reads the file where it lies. Restoring and verifying
are in `agent.backups.restore`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from agent.addons.model import Addon
from agent.addons.service import AddonService
from agent.backups import dumps, files
from agent.backups.model import Backup, BackupNotFound, file_name, parse_id
from agent.backups.offsite import OffsiteFailed, OffsiteStore
from agent.backups.store import BackupStore
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.store.events import EventStore

log = logging.getLogger(__name__)


class BackupService:
    def __init__(self, addons: AddonService, store: BackupStore, events: EventStore,
                 offsite: OffsiteStore | None = None) -> None:
        self.addons = addons
        self.store = store
        self.events = events
        self.offsite = offsite
        self._uploading: set[tuple[str, int]] = set()  # (app, number) being uploaded now

    def uploading(self, backup: Backup) -> bool:
        return (backup.app, backup.number) in self._uploading

    def directory(self, app: str) -> Path:
        return self.addons.backups_root / app

    def path(self, backup: Backup) -> Path:
        return self.directory(backup.app) / backup.file_name

    def get(self, app: str, backup_id: str) -> Backup:
        backup = self.store.get(app, parse_id(backup_id))
        if not self.path(backup).is_file() and self.store.copy_of(app, backup.number) is None:
            raise BackupNotFound(app, backup_id)
        return backup

    async def ensure_local(self, backup: Backup, out: DeployOutput) -> Path:
        """The backup's file here, fetched from its off-host copy when it is gone."""
        path = self.path(backup)
        location = self.store.copy_of(backup.app, backup.number)
        if not path.is_file() and location is not None and self.offsite is not None:
            out.step(f"Fetching {backup.id} from {location}")
            path.parent.mkdir(parents=True, exist_ok=True)
            await self.offsite.fetch(self.offsite.key(backup.app, backup.file_name), path,
                                     backup.sha256)
        if not path.is_file():
            raise BackupNotFound(backup.app, backup.id)
        return path

    async def copy_offsite(self, backup: Backup, out: DeployOutput,
                           now: float | None = None) -> bool:
        """Upload and read back; whether it is copied. A failure is loud (event, log,
        output) and recorded, so the scheduler tries again; the local backup stays good."""
        if self.offsite is None or self.uploading(backup):
            return False
        key = self.offsite.key(backup.app, backup.file_name)
        self._uploading.add((backup.app, backup.number))
        try:
            await self.offsite.upload(self.path(backup), key, backup.sha256)
        except OffsiteFailed as exc:
            self.store.record_upload_failure(backup.app, backup.number,
                                             time.time() if now is None else now, str(exc))
            self.events.record(backup.app, "BackupUploadFailed", f"{backup.id}: {exc}")
            log.error("off-host copy failed app=%s backup=%s error=%s", backup.app, backup.id, exc)
            out.heading(f"{backup.id} is kept on this server only (the upload is tried "
                        f"again later): {exc}")
            return False
        finally:
            self._uploading.discard((backup.app, backup.number))
        location = f"s3://{self.offsite.bucket}/{key}"
        self.store.record_copy(backup.app, backup.number, location,
                               time.time() if now is None else now)
        out.detail(f"copied to {location} (read back, SHA-256 checked)")
        return True

    def addon_for(self, app: str, name: str | None) -> Addon:
        """The named add-on, or the app's only one."""
        if name is not None:
            return self.addons.store.get(app, name)
        found = self.addons.store.of_app(app)
        if len(found) != 1:
            names = ", ".join(a.name for a in found) or "none"
            raise BerthError(f"{app} has {len(found)} add-ons ({names}): name one")
        return found[0]

    async def capture(self, app: str, name: str | None, out: DeployOutput,
                      reason: str = "manual") -> Backup:
        addon = self.addon_for(app, name)
        out.step(f"Capturing {addon.name} of {app}")
        try:
            backup = await self._capture(addon, reason)
        except BerthError as exc:
            self.events.record(app, "BackupFailed", f"{addon.name}: {exc}")
            log.error("backup failed app=%s addon=%s error=%s", app, addon.name, exc)
            raise
        self.events.record(app, "BackupCaptured",
                           f"{backup.id} of {addon.name}, {backup.size} bytes ({reason})")
        out.heading(f"{backup.id}: {addon.name}, {backup.size} bytes, sha256 "
                    f"{backup.sha256[:16]}..., {addon.kind} {backup.server_version}")
        await self.copy_offsite(backup, out)
        return backup

    async def _capture(self, addon: Addon, reason: str) -> Backup:
        """A backup written; an error of the filesystem (disk full, ...) is a failed
        backup like any other, so it is recorded and logged, never an escaped OSError."""
        try:
            return await self._write(addon, reason)
        except OSError as exc:
            raise dumps.DumpFailed(f"writing the backup of {addon.name} failed: {exc}") from exc

    async def _write(self, addon: Addon, reason: str) -> Backup:
        number = self.store.next_number(addon.app)
        final = self.directory(addon.app) / file_name(number, addon.name, addon.kind)
        self.directory(addon.app).mkdir(parents=True, exist_ok=True)
        handle = files.open_temp(final)
        writer = files.HashingWriter(handle)
        engine, limits = self.addons.engine, self.addons.settings
        try:
            if addon.kind == "postgres":
                await dumps.postgres_dump(engine, addon, writer,  # type: ignore[arg-type]
                                          timeout=limits.capture_timeout,
                                          probe_timeout=limits.command_timeout)
                version = await dumps.postgres_version(engine, addon,
                                                       timeout=limits.command_timeout)
            else:
                await dumps.redis_snapshot(engine, addon, timeout=limits.capture_timeout,
                                           probe_timeout=limits.command_timeout)
                rdb = dumps.redis_rdb(self.addons.layout(addon).data)
                await asyncio.to_thread(files.copy_hashing, rdb, writer)
                version = await dumps.redis_version(engine, addon, timeout=limits.command_timeout)
            await asyncio.to_thread(files.commit, handle, final)
        except BaseException:
            await asyncio.to_thread(files.discard, handle, final)
            raise
        backup = Backup(app=addon.app, number=number, addon=addon.name, kind=addon.kind,
                        size=writer.size, sha256=writer.sha256, server_version=version,
                        created_at=time.time(), reason=reason)
        self.store.add(backup)
        return backup

    async def retire_app(self, app: str, out: DeployOutput) -> None:
        """Before an app is destroyed: a final backup of each of its add-ons, then each
        removed (its backups stay). A failed backup stops here, the add-on intact."""
        for addon in self.addons.store.of_app(app):
            await self.capture(app, addon.name, out, reason="final")
            await self.addons.remove(addon, out)
            self.store.forget_addon(app, addon.name)

    async def delete(self, backup: Backup) -> None:
        """The file, its off-host copy (a failure there is logged), then the record."""
        await asyncio.to_thread(self.path(backup).unlink, True)
        if self.offsite is not None and self.store.copy_of(backup.app, backup.number):
            try:
                await self.offsite.delete(self.offsite.key(backup.app, backup.file_name))
            except OffsiteFailed as exc:
                log.error("off-host copy not deleted backup=%s error=%s", backup.id, exc)
        self.store.forget_copy(backup.app, backup.number)
        self.store.remove(backup.app, backup.number)

    def describe(self, backup: Backup) -> dict[str, object]:
        """Its record, where its file is, and its off-host copy (or why there is none)."""
        failure = self.store.upload_failure(backup.app, backup.number)
        return {**backup.public(), "path": str(self.path(backup)),
                "local": self.path(backup).is_file(),
                "offsite": self.store.copy_of(backup.app, backup.number),
                "offsite_target": self.offsite is not None,
                "upload_attempts": failure.attempts if failure else 0,
                "upload_error": failure.error if failure else None}
