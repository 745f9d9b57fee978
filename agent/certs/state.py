"""The certificate manager's tables in the agent's SQLite database.

- `cert_domains`: the desired state the deploy side gave (domain -> app, ACME on/off), so
  stored certificates are served from the first second after a restart.
- `cert_attempts`: per ACME directory and domain, the failure record (backoff, the CA's
  rate-limit floor, last error), ARI's suggested renewal time, and counters. Keyed by the
  directory URL like the files, so staging never delays production.
- `cert_custom`: which apps use a certificate of their own (the PEM lives in a file).

Pass `SCHEMA` to `Database.open`. Each write is one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from agent.certs.policy import Attempts
from agent.store.db import Database

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS cert_domains (
        domain TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        acme INTEGER NOT NULL DEFAULT 1
    )""",
    "CREATE INDEX IF NOT EXISTS cert_domains_by_app ON cert_domains(app)",
    """CREATE TABLE IF NOT EXISTS cert_attempts (
        directory TEXT NOT NULL,
        domain TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_failure_at REAL,
        next_attempt REAL,
        rate_limited_until REAL,
        ari_time REAL,
        ari_next_check REAL,
        last_issued_at REAL,
        orders INTEGER NOT NULL DEFAULT 0,
        issued INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (directory, domain)
    )""",
    """CREATE TABLE IF NOT EXISTS cert_custom (
        app TEXT PRIMARY KEY,
        names TEXT NOT NULL,
        not_after REAL NOT NULL,
        added_at REAL NOT NULL
    )""",
)


@dataclass(frozen=True)
class AttemptRecord:
    """One row of `cert_attempts`."""

    attempts: Attempts = field(default_factory=Attempts)
    last_error: str | None = None
    ari_time: float | None = None
    ari_next_check: float | None = None
    last_issued_at: float | None = None
    orders: int = 0  # orders placed with the CA for this name (a counter, for tests/status)
    issued: int = 0  # certificates obtained


class CertState:
    """Typed access to the manager's tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # Desired domains ---------------------------------------------------------------
    def desired(self) -> dict[str, tuple[str, bool]]:
        """domain -> (app, acme on)."""
        rows = self._db.query("SELECT domain, app, acme FROM cert_domains")
        return {r["domain"]: (r["app"], bool(r["acme"])) for r in rows}

    def set_app_domains(self, app: str, domains: tuple[str, ...], acme: bool) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM cert_domains WHERE app = ?", (app,))
            tx.executemany(
                "INSERT INTO cert_domains (domain, app, acme) VALUES (?, ?, ?)",
                [(d, app, int(acme)) for d in domains],
            )

    # Attempts ----------------------------------------------------------------------
    def attempts(self, directory: str, domain: str) -> AttemptRecord:
        rows = self._db.query(
            "SELECT * FROM cert_attempts WHERE directory = ? AND domain = ?", (directory, domain)
        )
        return _record(rows[0]) if rows else AttemptRecord()

    def all_attempts(self, directory: str) -> dict[str, AttemptRecord]:
        rows = self._db.query("SELECT * FROM cert_attempts WHERE directory = ?", (directory,))
        return {r["domain"]: _record(r) for r in rows}

    def save_attempts(self, directory: str, domain: str, record: AttemptRecord) -> None:
        a = record.attempts
        with self._db.transaction() as tx:
            tx.execute(
                """INSERT INTO cert_attempts (directory, domain, failures, last_error,
                       last_failure_at, next_attempt, rate_limited_until, ari_time,
                       ari_next_check, last_issued_at, orders, issued)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (directory, domain) DO UPDATE SET
                       failures = excluded.failures, last_error = excluded.last_error,
                       last_failure_at = excluded.last_failure_at,
                       next_attempt = excluded.next_attempt,
                       rate_limited_until = excluded.rate_limited_until,
                       ari_time = excluded.ari_time, ari_next_check = excluded.ari_next_check,
                       last_issued_at = excluded.last_issued_at, orders = excluded.orders,
                       issued = excluded.issued""",
                (directory, domain, a.failures, record.last_error, a.last_failure_at,
                 a.next_attempt, a.rate_limited_until, record.ari_time,
                 record.ari_next_check, record.last_issued_at, record.orders, record.issued),
            )

    # Custom certificates -----------------------------------------------------------
    def custom(self) -> dict[str, tuple[str, ...]]:
        """app -> names its custom certificate covers."""
        rows = self._db.query("SELECT app, names FROM cert_custom")
        return {r["app"]: tuple(json.loads(r["names"])) for r in rows}

    def set_custom(self, app: str, names: tuple[str, ...], not_after: float, now: float) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                """INSERT INTO cert_custom (app, names, not_after, added_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (app) DO UPDATE SET names = excluded.names,
                       not_after = excluded.not_after, added_at = excluded.added_at""",
                (app, json.dumps(list(names)), not_after, now),
            )

    def remove_custom(self, app: str) -> bool:
        with self._db.transaction() as tx:
            cursor = tx.execute("DELETE FROM cert_custom WHERE app = ?", (app,))
            return cursor.rowcount > 0


def _record(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        attempts=Attempts(
            failures=row["failures"],
            last_failure_at=row["last_failure_at"],
            next_attempt=row["next_attempt"],
            rate_limited_until=row["rate_limited_until"],
        ),
        last_error=row["last_error"],
        ari_time=row["ari_time"],
        ari_next_check=row["ari_next_check"],
        last_issued_at=row["last_issued_at"],
        orders=row["orders"],
        issued=row["issued"],
    )
