"""The add-ons table: which add-ons each app has, and what recreates their containers.

The password is stored here (the state database is root's only, 0600) because the
container is recreated from this row when it vanishes; it leaves the agent only inside
the app's config var.
"""

from __future__ import annotations

import sqlite3

from agent.addons.model import Addon, AddonNotFound
from agent.errors import Conflict
from agent.store.db import Database

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS addons (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT NOT NULL,
        image TEXT NOT NULL,
        variable TEXT NOT NULL,
        password TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (app, name)
    )""",
)


def _addon(row: sqlite3.Row) -> Addon:
    return Addon(app=row["app"], name=row["name"], kind=row["kind"], version=row["version"],
                 image=row["image"], variable=row["variable"], password=row["password"],
                 created_at=row["created_at"])


class AddonStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, addon: Addon) -> None:
        try:
            with self._db.transaction() as tx:
                tx.execute(
                    "INSERT INTO addons (app, name, kind, version, image, variable, password,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (addon.app, addon.name, addon.kind, addon.version, addon.image,
                     addon.variable, addon.password, addon.created_at))
        except sqlite3.IntegrityError:
            raise Conflict(f"{addon.app} already has an add-on named {addon.name}") from None

    def get(self, app: str, name: str) -> Addon:
        rows = self._db.query("SELECT * FROM addons WHERE app = ? AND name = ?", (app, name))
        if not rows:
            raise AddonNotFound(app, name)
        return _addon(rows[0])

    def of_app(self, app: str) -> list[Addon]:
        rows = self._db.query("SELECT * FROM addons WHERE app = ? ORDER BY created_at, name",
                              (app,))
        return [_addon(r) for r in rows]

    def all(self) -> list[Addon]:
        rows = self._db.query("SELECT * FROM addons ORDER BY app, created_at, name")
        return [_addon(r) for r in rows]

    def remove(self, app: str, name: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM addons WHERE app = ? AND name = ?", (app, name))
