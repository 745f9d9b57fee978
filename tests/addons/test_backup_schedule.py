"""Backup schedules (agent.backups.schedule): staggered defaults, when one is due, and
which scheduled backups retention keeps."""

from __future__ import annotations

import datetime

import pytest

from agent.backups.model import Backup, UploadFailure
from agent.backups.schedule import (
    UPLOAD_ATTEMPTS,
    InvalidSchedule,
    Schedule,
    default_schedule,
    due,
    next_run,
    to_prune,
    upload_retry_at,
)

UTC = datetime.UTC


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def backup(number: int, when: str, reason: str = "scheduled") -> Backup:
    return Backup(app="a", number=number, addon="postgres", kind="postgres", size=1,
                  sha256="0" * 64, server_version="16", created_at=at(when), reason=reason)


def test_defaults_are_daily_between_three_and_five_and_spread() -> None:
    times = {default_schedule(f"app{i}", "postgres").at for i in range(40)}
    assert all("03:00" <= t <= "04:59" for t in times)
    assert len(times) > 20  # not all at once
    assert default_schedule("shop", "postgres") == default_schedule("shop", "postgres")


def test_next_run_and_due() -> None:
    daily = Schedule("03:15")
    assert next_run(daily, at("2026-01-05T01:00:00")) == at("2026-01-05T03:15:00")
    assert next_run(daily, at("2026-01-05T03:15:00")) == at("2026-01-06T03:15:00")
    created = at("2026-01-05T10:00:00")
    assert not due(daily, None, created, at("2026-01-06T03:14:59"))
    assert due(daily, None, created, at("2026-01-06T03:15:00"))
    assert not due(daily, at("2026-01-06T03:15:01"), created, at("2026-01-06T20:00:00"))


@pytest.mark.parametrize("text", ["3:15", "24:00", "03:60", "0315", "", "03:15 "])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidSchedule):
        Schedule(text)


def test_bad_counts_are_refused() -> None:
    for daily, weekly in ((-1, 4), (7, 1001), (0, 0)):
        with pytest.raises(InvalidSchedule):
            Schedule("03:00", daily, weekly)


def test_retention_keeps_newest_per_day_and_per_week_and_never_manual_ones() -> None:
    history = [backup(n, f"2026-01-{day:02d}T03:15:00") for n, day in enumerate(range(1, 29), 1)]
    history.append(backup(29, "2026-01-28T12:00:00"))  # a second one on the 28th
    history.append(backup(30, "2025-12-01T03:15:00", reason="manual"))
    history.append(backup(31, "2025-12-02T03:15:00", reason="final"))
    doomed = {b.number for b in to_prune(history, Schedule("03:15", keep_daily=3, keep_weekly=2))}
    kept = {b.number for b in history} - doomed
    # Days 28 (the later one), 27, 26; ISO week of the 28th (Wed: the 26th-28th) and the week
    # before (the 19th-25th: newest is the 25th); manual and final ones always.
    assert kept == {29, 27, 26, 25, 30, 31}


def test_a_failed_upload_is_retried_with_backoff_then_given_up() -> None:
    assert upload_retry_at(None, 1000.0) == 1000.0  # never tried: now
    assert upload_retry_at(UploadFailure(1, 1000.0, "x"), 5000.0) == 1300.0
    assert upload_retry_at(UploadFailure(2, 1000.0, "x"), 5000.0) == 1600.0
    assert upload_retry_at(UploadFailure(4, 1000.0, "x"), 5000.0) == 1000.0 + 2400
    assert upload_retry_at(UploadFailure(12, 1000.0, "x"), 5000.0) == 1000.0 + 6 * 3600
    assert upload_retry_at(UploadFailure(UPLOAD_ATTEMPTS - 1, 0.0, "x"), 1.0) == 6 * 3600
    assert upload_retry_at(UploadFailure(UPLOAD_ATTEMPTS, 0.0, "x"), 1e9) is None

