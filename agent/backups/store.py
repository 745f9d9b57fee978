"""The backups table: one row per complete backup file."""

from __future__ import annotations

import sqlite3

from agent.backups.model import Backup, BackupNotFound, UploadFailure
from agent.backups.schedule import Schedule
from agent.store.db import Database

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS backups (
        app TEXT NOT NULL,
        number INTEGER NOT NULL,
        addon TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        server_version TEXT NOT NULL,
        created_at REAL NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (app, number)
    )""",
    # The last number handed out per app, so an id is never reused after pruning.
    """CREATE TABLE IF NOT EXISTS backup_counters (
        app TEXT PRIMARY KEY,
        last INTEGER NOT NULL
    )""",
    # A schedule set with backups:schedule (none: the staggered daily default).
    """CREATE TABLE IF NOT EXISTS backup_schedules (
        app TEXT NOT NULL,
        addon TEXT NOT NULL,
        at TEXT NOT NULL,
        keep_daily INTEGER NOT NULL,
        keep_weekly INTEGER NOT NULL,
        PRIMARY KEY (app, addon)
    )""",
    # Off-host copies, recorded once uploaded and read back whole.
    """CREATE TABLE IF NOT EXISTS backup_copies (
        app TEXT NOT NULL,
        number INTEGER NOT NULL,
        location TEXT NOT NULL,
        copied_at REAL NOT NULL,
        PRIMARY KEY (app, number)
    )""",
    # Failed uploads of a backup not yet copied off-host: how many, the last one and why.
    """CREATE TABLE IF NOT EXISTS backup_uploads (
        app TEXT NOT NULL,
        number INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        attempted_at REAL NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (app, number)
    )""",
    # The last scheduled attempt per add-on and, when it failed, why.
    """CREATE TABLE IF NOT EXISTS backup_runs (
        app TEXT NOT NULL,
        addon TEXT NOT NULL,
        attempted_at REAL NOT NULL,
        error TEXT,
        PRIMARY KEY (app, addon)
    )""",
)


def _backup(row: sqlite3.Row) -> Backup:
    return Backup(app=row["app"], number=row["number"], addon=row["addon"], kind=row["kind"],
                  size=row["size"], sha256=row["sha256"], server_version=row["server_version"],
                  created_at=row["created_at"], reason=row["reason"])


class BackupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def next_number(self, app: str) -> int:
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO backup_counters (app, last) VALUES (?, 1) "
                       "ON CONFLICT(app) DO UPDATE SET last = last + 1", (app,))
            row = tx.execute("SELECT last FROM backup_counters WHERE app = ?", (app,)).fetchone()
        return int(row["last"])

    def add(self, backup: Backup) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO backups (app, number, addon, kind, size, sha256, server_version,"
                " created_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (backup.app, backup.number, backup.addon, backup.kind, backup.size,
                 backup.sha256, backup.server_version, backup.created_at, backup.reason))

    def get(self, app: str, number: int) -> Backup:
        rows = self._db.query("SELECT * FROM backups WHERE app = ? AND number = ?", (app, number))
        if not rows:
            raise BackupNotFound(app, f"b{number}")
        return _backup(rows[0])

    def of_app(self, app: str, addon: str | None = None) -> list[Backup]:
        if addon is None:
            rows = self._db.query("SELECT * FROM backups WHERE app = ? ORDER BY number", (app,))
        else:
            rows = self._db.query("SELECT * FROM backups WHERE app = ? AND addon = ? "
                                  "ORDER BY number", (app, addon))
        return [_backup(r) for r in rows]

    def latest(self, app: str, addon: str) -> Backup | None:
        found = self.of_app(app, addon)
        return found[-1] if found else None

    def remove(self, app: str, number: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM backups WHERE app = ? AND number = ?", (app, number))

    # schedules and scheduled runs -----------------------------------------------------

    def schedule(self, app: str, addon: str) -> Schedule | None:
        rows = self._db.query("SELECT * FROM backup_schedules WHERE app = ? AND addon = ?",
                              (app, addon))
        if not rows:
            return None
        row = rows[0]
        return Schedule(row["at"], row["keep_daily"], row["keep_weekly"])

    def set_schedule(self, app: str, addon: str, schedule: Schedule) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO backup_schedules (app, addon, at, keep_daily,"
                       " keep_weekly) VALUES (?, ?, ?, ?, ?)",
                       (app, addon, schedule.at, schedule.keep_daily, schedule.keep_weekly))

    def record_run(self, app: str, addon: str, attempted_at: float, error: str | None) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO backup_runs (app, addon, attempted_at, error)"
                       " VALUES (?, ?, ?, ?)", (app, addon, attempted_at, error))

    def last_run(self, app: str, addon: str) -> tuple[float, str | None] | None:
        rows = self._db.query("SELECT * FROM backup_runs WHERE app = ? AND addon = ?",
                              (app, addon))
        return (rows[0]["attempted_at"], rows[0]["error"]) if rows else None

    def forget_addon(self, app: str, addon: str) -> None:
        """Its schedule and runs (its backups stay)."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM backup_schedules WHERE app = ? AND addon = ?", (app, addon))
            tx.execute("DELETE FROM backup_runs WHERE app = ? AND addon = ?", (app, addon))

    # off-host copies -------------------------------------------------------------------

    def record_copy(self, app: str, number: int, location: str, copied_at: float) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO backup_copies (app, number, location, copied_at)"
                       " VALUES (?, ?, ?, ?)", (app, number, location, copied_at))
            tx.execute("DELETE FROM backup_uploads WHERE app = ? AND number = ?", (app, number))

    def record_upload_failure(self, app: str, number: int, attempted_at: float,
                              error: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO backup_uploads (app, number, attempts, attempted_at, error)"
                       " VALUES (?, ?, 1, ?, ?) ON CONFLICT(app, number) DO UPDATE SET"
                       " attempts = attempts + 1, attempted_at = excluded.attempted_at,"
                       " error = excluded.error", (app, number, attempted_at, error))

    def upload_failure(self, app: str, number: int) -> UploadFailure | None:
        rows = self._db.query("SELECT * FROM backup_uploads WHERE app = ? AND number = ?",
                              (app, number))
        if not rows:
            return None
        return UploadFailure(rows[0]["attempts"], rows[0]["attempted_at"], rows[0]["error"])

    def not_copied(self, app: str | None = None) -> list[Backup]:
        """Backups with no off-host copy (of one app, or all), oldest first."""
        rows = self._db.query(
            "SELECT * FROM backups b WHERE (? IS NULL OR b.app = ?) AND NOT EXISTS"
            " (SELECT 1 FROM backup_copies c WHERE c.app = b.app AND c.number = b.number)"
            " ORDER BY b.created_at", (app, app))
        return [_backup(r) for r in rows]

    def copy_of(self, app: str, number: int) -> str | None:
        rows = self._db.query("SELECT location FROM backup_copies WHERE app = ? AND number = ?",
                              (app, number))
        return str(rows[0]["location"]) if rows else None

    def forget_copy(self, app: str, number: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM backup_copies WHERE app = ? AND number = ?", (app, number))
            tx.execute("DELETE FROM backup_uploads WHERE app = ? AND number = ?", (app, number))
