"""Apps, their config vars, domains and formation, as stored in the state database."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.appsettings import AppSettings
from agent.errors import AppNotFound, Conflict, NotFound
from agent.services.configvars import ConfigChange
from agent.store.db import Database, UnreadableRow


@dataclass(frozen=True)
class App:
    name: str
    created_at: float
    settings: AppSettings = field(default_factory=AppSettings)
    formation: Mapping[str, int] = field(default_factory=dict)
    stopped: bool = False


class AppStore:
    """Reads and writes the apps table and the tables hanging off it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # apps ---------------------------------------------------------------------------

    def create(self, name: str, *, now: float | None = None) -> App:
        with self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"app {name!r} already exists")
            created = time.time() if now is None else now
            tx.execute("INSERT INTO apps (name, created_at) VALUES (?, ?)", (name, created))
        return App(name=name, created_at=created)

    def get(self, name: str) -> App:
        rows = self._db.query("SELECT * FROM apps WHERE name = ?", (name,))
        if not rows:
            raise AppNotFound(name)
        row = rows[0]
        try:
            return App(
                name=row["name"],
                created_at=row["created_at"],
                settings=AppSettings.from_json(json.loads(row["settings"])),
                formation=_formation(json.loads(row["formation"])),
                stopped=bool(row["stopped"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:  # JSON, shapes
            raise UnreadableRow(f"settings of {name}", str(exc)) from exc

    def _must_exist(self, name: str) -> None:
        if not self.exists(name):
            raise AppNotFound(name)

    def exists(self, name: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM apps WHERE name = ?", (name,)))

    def names(self) -> list[str]:
        return [r["name"] for r in self._db.query("SELECT name FROM apps ORDER BY name")]

    def delete(self, name: str) -> None:
        with self._db.transaction() as tx:
            if tx.execute("DELETE FROM apps WHERE name = ?", (name,)).rowcount == 0:
                raise AppNotFound(name)

    def save_settings(self, name: str, settings: AppSettings) -> None:
        self._update(name, "settings", json.dumps(settings.to_json()))

    def save_formation(self, name: str, formation: Mapping[str, int]) -> None:
        self._update(name, "formation", json.dumps(dict(sorted(formation.items()))))

    def set_stopped(self, name: str, stopped: bool) -> None:
        self._update(name, "stopped", int(stopped))

    def _update(self, name: str, column: str, value: object) -> None:
        with self._db.transaction() as tx:
            cursor = tx.execute(f"UPDATE apps SET {column} = ? WHERE name = ?", (value, name))
            if cursor.rowcount == 0:
                raise AppNotFound(name)

    # config vars ---------------------------------------------------------------------

    def config(self, name: str) -> dict[str, str]:
        self._must_exist(name)
        rows = self._db.query(
            "SELECT key, value FROM config_vars WHERE app = ? ORDER BY key", (name,)
        )
        return {r["key"]: r["value"] for r in rows}

    def replace_config(self, name: str, config: Mapping[str, str]) -> None:
        with self._db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise AppNotFound(name)
            tx.execute("DELETE FROM config_vars WHERE app = ?", (name,))
            tx.executemany(
                "INSERT INTO config_vars (app, key, value) VALUES (?, ?, ?)",
                [(name, k, v) for k, v in config.items()],
            )

    def change_config(self, name: str, change: ConfigChange, *, strict: bool = True
                      ) -> dict[str, str]:
        """Apply `change` to the config as stored, in one transaction (a change made at
        the same time is never lost); the config after it. `strict`: see
        `ConfigChange.applied_to`."""
        with self._db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise AppNotFound(name)
            rows = tx.execute("SELECT key, value FROM config_vars WHERE app = ?", (name,))
            result = change.applied_to({r["key"]: r["value"] for r in rows}, name,
                                      strict=strict)
            tx.executemany("DELETE FROM config_vars WHERE app = ? AND key = ?",
                           [(name, key) for key in change.unset])
            tx.executemany(
                "INSERT INTO config_vars (app, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value",
                [(name, k, v) for k, v in change.set.items()],
            )
        return result

    # storage -------------------------------------------------------------------------

    def mounts(self, name: str) -> list[str]:
        """Container paths of the app kept in persistent storage (agent.storage)."""
        self._must_exist(name)
        rows = self._db.query(
            "SELECT path FROM storage_mounts WHERE app = ? ORDER BY path", (name,))
        return [r["path"] for r in rows]

    def add_mount(self, name: str, path: str, *, now: float | None = None) -> None:
        with self._db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise AppNotFound(name)
            if tx.execute("SELECT 1 FROM storage_mounts WHERE app = ? AND path = ?",
                          (name, path)).fetchone():
                raise Conflict(f"{path} of {name} is already in persistent storage")
            tx.execute("INSERT INTO storage_mounts (app, path, created_at) VALUES (?, ?, ?)",
                       (name, path, time.time() if now is None else now))

    def remove_mount(self, name: str, path: str) -> None:
        with self._db.transaction() as tx:
            cursor = tx.execute(
                "DELETE FROM storage_mounts WHERE app = ? AND path = ?", (name, path))
            if cursor.rowcount == 0:
                raise NotFound("storage mount", f"{path} of {name}")

    # domains -------------------------------------------------------------------------

    def domains(self, name: str) -> list[str]:
        self._must_exist(name)
        rows = self._db.query("SELECT domain FROM domains WHERE app = ? ORDER BY domain", (name,))
        return [r["domain"] for r in rows]

    def domain_owner(self, domain: str) -> str | None:
        rows = self._db.query("SELECT app FROM domains WHERE domain = ?", (domain,))
        return rows[0]["app"] if rows else None

    def add_domain(self, name: str, domain: str, *, now: float | None = None) -> None:
        with self._db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise AppNotFound(name)
            row = tx.execute("SELECT app FROM domains WHERE domain = ?", (domain,)).fetchone()
            if row is not None:
                owner = row["app"]
                if owner == name:
                    raise Conflict(f"{domain} is already a domain of {name}")
                raise Conflict(f"{domain} belongs to app {owner}")
            tx.execute(
                "INSERT INTO domains (domain, app, created_at) VALUES (?, ?, ?)",
                (domain, name, time.time() if now is None else now),
            )

    def remove_domain(self, name: str, domain: str) -> None:
        with self._db.transaction() as tx:
            cursor = tx.execute(
                "DELETE FROM domains WHERE app = ? AND domain = ?", (name, domain)
            )
            if cursor.rowcount == 0:
                raise NotFound("domain", f"{domain} of {name}")


def _formation(data: object) -> dict[str, int]:
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in data.items()):
        raise ValueError(f"formation is not TYPE -> count: {data!r}"[:200])
    return data
