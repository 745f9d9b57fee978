"""When each add-on is backed up, and which scheduled backups are kept (pure).

Every add-on is backed up daily by default, at a time of its own between 03:00 and
04:59 UTC chosen from its app and name, so one server's add-ons do not all dump at
once. `backups:schedule APP NAME 03:15 --keep-daily 7 --keep-weekly 4` sets another.
Retention keeps, of the scheduled backups, the newest of each of the last `keep_daily`
days that have one and the newest of each of the last `keep_weekly` ISO weeks; manual
and final backups are never pruned. A backup whose upload to the off-host target failed
is uploaded again with backoff (`upload_retry_at`).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.backups.model import Backup, UploadFailure
from agent.errors import BerthError

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
DAY = 86400.0
# A daily backup older than this is overdue (a day, and slack for a slow dump).
OVERDUE_AFTER = DAY + 2 * 3600
# Retries of a failed upload to the off-host target: backoff, and when to give up
# (5 min doubling to 6 h: 24 attempts take about five days).
UPLOAD_FIRST_RETRY = 300.0
UPLOAD_MAX_RETRY = 6 * 3600.0
UPLOAD_ATTEMPTS = 24


class InvalidSchedule(BerthError):
    pass


@dataclass(frozen=True)
class Schedule:
    at: str  # HH:MM, UTC
    keep_daily: int = 7
    keep_weekly: int = 4

    def __post_init__(self) -> None:
        if not _TIME.fullmatch(self.at):
            raise InvalidSchedule(f"invalid time {self.at!r}: HH:MM, 00:00 to 23:59 (UTC)")
        for name, value in (("--keep-daily", self.keep_daily), ("--keep-weekly", self.keep_weekly)):
            if not 0 <= value <= 1000:
                raise InvalidSchedule(f"{name} must be from 0 to 1000")
        if self.keep_daily + self.keep_weekly == 0:
            raise InvalidSchedule("keep at least one backup (--keep-daily or --keep-weekly)")

    @property
    def minute_of_day(self) -> int:
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


def default_schedule(app: str, addon: str) -> Schedule:
    """Daily, staggered over 03:00-04:59 UTC by a hash of the add-on's identity."""
    offset = int.from_bytes(hashlib.sha256(f"{app}/{addon}".encode()).digest()[:4], "big") % 120
    return Schedule(at=f"{3 + offset // 60:02d}:{offset % 60:02d}")


def next_run(schedule: Schedule, after: float) -> float:
    """The first scheduled time strictly after `after` (a UNIX time)."""
    moment = datetime.datetime.fromtimestamp(after, datetime.UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    candidate = day + datetime.timedelta(minutes=schedule.minute_of_day)
    if candidate.timestamp() <= after:
        candidate += datetime.timedelta(days=1)
    return candidate.timestamp()


def due(schedule: Schedule, last_attempt: float | None, created_at: float, now: float) -> bool:
    """Whether a backup is due: the first scheduled time after the last attempt (or the
    add-on's creation) has passed."""
    return next_run(schedule, last_attempt if last_attempt is not None else created_at) <= now


def upload_retry_at(failure: UploadFailure | None, now: float) -> float | None:
    """When a backup with no off-host copy is uploaded again: at once when no upload was
    tried (the agent stopped first, or the target is new), else 5 minutes after the
    first failure, doubling up to 6 hours; never after UPLOAD_ATTEMPTS failures."""
    if failure is None:
        return now
    if failure.attempts >= UPLOAD_ATTEMPTS:
        return None
    wait = min(UPLOAD_FIRST_RETRY * 2.0 ** (failure.attempts - 1), UPLOAD_MAX_RETRY)
    return failure.attempted_at + wait


def to_prune(backups: Iterable[Backup], schedule: Schedule) -> list[Backup]:
    """Scheduled backups the retention rules no longer keep."""
    scheduled = sorted((b for b in backups if b.reason == "scheduled"),
                       key=lambda b: b.created_at, reverse=True)
    kept = _newest_per(scheduled, _day, schedule.keep_daily)
    kept |= _newest_per(scheduled, _week, schedule.keep_weekly)
    return [b for b in scheduled if b.number not in kept]


def _newest_per(newest_first: Sequence[Backup], period: object, count: int) -> set[int]:
    kept: set[int] = set()
    seen: set[object] = set()
    for backup in newest_first:
        key = period(backup.created_at)  # type: ignore[operator]
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.add(key)
        kept.add(backup.number)
    return kept


def _day(stamp: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).date()


def _week(stamp: float) -> tuple[int, int]:
    iso = _day(stamp).isocalendar()
    return (iso.year, iso.week)
