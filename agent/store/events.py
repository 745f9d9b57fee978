"""The per-app event history (deploys, config changes, scaling, failures)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.store.db import Database

MAX_EVENTS_PER_APP = 1000


@dataclass(frozen=True)
class Event:
    app: str
    time: float
    kind: str  # past tense: ReleaseDeployed, ConfigChanged, ...
    message: str


class EventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, app: str, kind: str, message: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO events (app, time, kind, message) VALUES (?, ?, ?, ?)",
                (app, time.time(), kind, message),
            )
            tx.execute(
                """DELETE FROM events WHERE app = ? AND id <= (
                       SELECT id FROM events WHERE app = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
                (app, app, MAX_EVENTS_PER_APP),
            )

    def list(self, app: str, limit: int = 50) -> list[Event]:
        rows = self._db.query(
            "SELECT * FROM events WHERE app = ? ORDER BY id DESC LIMIT ?", (app, limit)
        )
        return [Event(r["app"], r["time"], r["kind"], r["message"]) for r in rows]

    def forget(self, app: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM events WHERE app = ?", (app,))
