"""Running scheduled backups: each add-on's when due, then retention pruning.

A task of the agent checks every minute. A failed scheduled backup is loud: an event on
the app and a line in the agent's log (both from the capture), the failure stored so
`addons` and `apps` show it, and another attempt an hour later. Pruning removes the
file, then the record. A backup not copied off-host (its upload failed, or the agent
stopped first) is uploaded again, with backoff, and shown as not copied until it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.addons.model import Addon
from agent.backups import schedule as rules
from agent.backups.schedule import Schedule
from agent.backups.service import BackupService
from agent.deploy.output import DeployOutput
from agent.errors import BerthError

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60.0
RETRY_AFTER = 3600.0


class BackupScheduler:
    def __init__(self, backups: BackupService, clock: Callable[[], float] = time.time) -> None:
        self._backups = backups
        self._clock = clock

    def schedule_of(self, addon: Addon) -> Schedule:
        return (self._backups.store.schedule(addon.app, addon.name)
                or rules.default_schedule(addon.app, addon.name))

    def is_due(self, addon: Addon, now: float) -> bool:
        last = self._backups.store.last_run(addon.app, addon.name)
        if last is not None and last[1] is not None:
            return now - last[0] >= RETRY_AFTER
        return rules.due(self.schedule_of(addon), last[0] if last else None,
                         addon.created_at, now)

    async def run_due(self) -> list[str]:
        """Back up every add-on that is due; the ids made."""
        made = []
        for addon in self._backups.addons.store.all():
            now = self._clock()
            if self.is_due(addon, now):
                backup_id = await self._run(addon, now)
                if backup_id:
                    made.append(backup_id)
        return made

    async def _run(self, addon: Addon, now: float) -> str | None:
        try:
            backup = await self._backups.capture(addon.app, addon.name, DeployOutput(),
                                                 reason="scheduled")
        except BerthError as exc:
            self._backups.store.record_run(addon.app, addon.name, now, str(exc))
            return None
        self._backups.store.record_run(addon.app, addon.name, now, None)
        await self.prune(addon)
        return backup.id

    async def retry_uploads(self) -> list[str]:
        """Upload again the backups with no off-host copy whose retry is due (backoff in
        agent.backups.schedule); the ids copied now."""
        if self._backups.offsite is None:
            return []
        copied = []
        for backup in self._backups.store.not_copied():
            now = self._clock()
            failure = self._backups.store.upload_failure(backup.app, backup.number)
            retry_at = rules.upload_retry_at(failure, now)
            if retry_at is None or retry_at > now or not self._backups.path(backup).is_file():
                continue
            log.info("uploading again app=%s backup=%s attempts=%s", backup.app, backup.id,
                     failure.attempts if failure else 0)
            if await self._backups.copy_offsite(backup, DeployOutput(), now=now):
                copied.append(backup.id)
        return copied

    async def prune(self, addon: Addon) -> list[str]:
        doomed = rules.to_prune(self._backups.store.of_app(addon.app, addon.name),
                                self.schedule_of(addon))
        for backup in doomed:
            await self._backups.delete(backup)
            log.info("backup pruned app=%s addon=%s backup=%s", addon.app, addon.name, backup.id)
        return [b.id for b in doomed]

    def status(self, addon: Addon) -> dict[str, Any]:
        """What `addons` shows: the schedule, the last failure, whether one is overdue."""
        now = self._clock()
        schedule = self.schedule_of(addon)
        last = self._backups.store.last_run(addon.app, addon.name)
        latest = self._backups.store.latest(addon.app, addon.name)
        since = latest.created_at if latest else addon.created_at
        return {"schedule": {"at": schedule.at, "keep_daily": schedule.keep_daily,
                             "keep_weekly": schedule.keep_weekly},
                "backup_error": last[1] if last else None,
                "backup_overdue": now - since > rules.OVERDUE_AFTER,
                "next_backup": rules.next_run(schedule, now),
                "not_copied": self.not_copied(addon)}

    def not_copied(self, addon: Addon) -> dict[str, Any] | None:
        """With an off-host target: the ids of the add-on's backups with no copy there and
        the last upload error (None when each has one)."""
        if self._backups.offsite is None:
            return None
        missing = [b for b in self._backups.store.not_copied(addon.app) if b.addon == addon.name]
        if not missing:
            return None
        failure = self._backups.store.upload_failure(addon.app, missing[-1].number)
        return {"ids": [b.id for b in missing], "error": failure.error if failure else None}

    def problems(self, app: str) -> list[dict[str, str]]:
        """The app's add-ons whose backups need attention (what `apps` shows): the last
        scheduled one failed, or none is newer than its schedule allows."""
        found = []
        for addon in self._backups.addons.store.of_app(app):
            status = self.status(addon)
            if status["backup_error"]:
                found.append({"addon": addon.name, "problem": "failed",
                              "detail": str(status["backup_error"])})
            elif status["backup_overdue"]:
                found.append({"addon": addon.name, "problem": "overdue",
                              "detail": "no backup for more than a day"})
            if missing := status["not_copied"]:
                why = f" (last upload: {missing['error']})" if missing["error"] else ""
                found.append({"addon": addon.name, "problem": "local-only",
                              "detail": f"{', '.join(missing['ids'])} not copied off-host{why}"})
        return found

    async def run_periodically(self, interval: float = CHECK_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.run_due()
                await self.retry_uploads()
            except BerthError as exc:
                log.error("scheduled backups: %s", exc)
