"""SSH public keys allowed to push and run verbs, as stored in the state database, with
what each may do: everything (an admin key) or only the apps it lists."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from agent.errors import Conflict, NotFound
from agent.store.db import Database, UnreadableRow

ADMIN = "*"  # the stored scope of an admin key; otherwise a JSON list of app names


@dataclass(frozen=True)
class SshKey:
    name: str
    public_key: str  # one line: "<type> <base64> [comment]"
    fingerprint: str  # SHA256:...
    created_at: float
    apps: tuple[str, ...] | None = None  # None: an admin key

    @property
    def admin(self) -> bool:
        return self.apps is None


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        _add_scope_column(db)

    def add(self, key: SshKey) -> None:
        with self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM ssh_keys WHERE name = ?", (key.name,)).fetchone():
                raise Conflict(f"a key named {key.name!r} already exists")
            row = tx.execute(
                "SELECT name FROM ssh_keys WHERE fingerprint = ?", (key.fingerprint,)
            ).fetchone()
            if row is not None:
                raise Conflict(f"this key is already added as {row['name']!r}")
            tx.execute(
                "INSERT INTO ssh_keys (name, public_key, fingerprint, created_at, scope) "
                "VALUES (?,?,?,?,?)",
                (key.name, key.public_key, key.fingerprint, key.created_at,
                 ADMIN if key.apps is None else json.dumps(list(key.apps))),
            )

    def remove(self, name: str) -> None:
        with self._db.transaction() as tx:
            if tx.execute("DELETE FROM ssh_keys WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound("key", name)

    def list(self) -> list[SshKey]:
        return [_key(r) for r in self._db.query("SELECT * FROM ssh_keys ORDER BY name")]

    def get(self, name: str) -> SshKey | None:
        rows = self._db.query("SELECT * FROM ssh_keys WHERE name = ?", (name,))
        return _key(rows[0]) if rows else None


def _key(row: sqlite3.Row) -> SshKey:
    scope = row["scope"]
    try:
        apps = None if scope == ADMIN else tuple(str(a) for a in json.loads(scope))
    except (ValueError, TypeError) as exc:
        raise UnreadableRow(f"scope of key {row['name']}", str(exc)) from exc
    return SshKey(row["name"], row["public_key"], row["fingerprint"], row["created_at"], apps)


def _add_scope_column(db: Database) -> None:
    """Migration: keys from before scopes were stored are admin keys, as they were."""
    columns = {r["name"] for r in db.query("PRAGMA table_info(ssh_keys)")}
    if columns and "scope" not in columns:
        with db.transaction() as tx:
            tx.execute(f"ALTER TABLE ssh_keys ADD COLUMN scope TEXT NOT NULL DEFAULT '{ADMIN}'")


