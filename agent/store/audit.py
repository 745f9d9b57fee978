"""The audit trail: who (which SSH key, or root on the server) asked for which change of
which app, when, and how it ended. Kept apart from apps' events, and kept after an app
is destroyed (who destroyed it is part of the trail)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.store.db import Database

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class AuditEntry:
    time: float
    actor: str
    verb: str
    app: str
    outcome: str


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, actor: str, verb: str, app: str, outcome: str,
               *, now: float | None = None) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO audit (time, actor, verb, app, outcome) VALUES (?, ?, ?, ?, ?)",
                (time.time() if now is None else now, actor, verb, app, outcome),
            )
            tx.execute("DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC "
                       "LIMIT 1 OFFSET ?)", (MAX_ENTRIES,))

    def list(self, app: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """The latest entries first (of one app, or of all)."""
        where, params = ("WHERE app = ?", (app, limit)) if app else ("", (limit,))
        rows = self._db.query(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", params)
        return [AuditEntry(r["time"], r["actor"], r["verb"], r["app"], r["outcome"])
                for r in rows]
