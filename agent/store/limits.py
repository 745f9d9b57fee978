"""Per-app resource limits (`ps:limit`), one row per app and process type."""

from __future__ import annotations

import json
from collections.abc import Callable

from agent.limits import Limits

Resolver = Callable[[str, str], Limits]
from agent.store.db import Database

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS limits (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        process TEXT NOT NULL,   -- a process type, `release` or `run`
        limits TEXT NOT NULL,    -- JSON: memory (bytes), cpus, pids
        PRIMARY KEY (app, process)
    )""",
)


class LimitStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def of(self, app: str) -> dict[str, Limits]:
        rows = self._db.query("SELECT process, limits FROM limits WHERE app = ?", (app,))
        return {row["process"]: Limits.from_json(json.loads(row["limits"])) for row in rows}

    def save(self, app: str, process: str, limits: Limits) -> None:
        with self._db.transaction() as tx:
            if limits == Limits():
                tx.execute("DELETE FROM limits WHERE app = ? AND process = ?", (app, process))
            else:
                tx.execute("INSERT OR REPLACE INTO limits (app, process, limits) VALUES (?, ?, ?)",
                           (app, process, json.dumps(limits.to_json())))

    def resolver(self, defaults: Limits) -> Resolver:
        """(app, process type or `release` / `run`) -> the limits its containers get."""

        def effective(app: str, process: str) -> Limits:
            return self.of(app).get(process, Limits()).over(defaults)

        return effective
