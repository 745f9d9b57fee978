"""SSH public keys allowed to push and run verbs, as stored in the state database."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import Conflict, NotFound
from agent.store.db import Database


@dataclass(frozen=True)
class SshKey:
    name: str
    public_key: str  # one line: "<type> <base64> [comment]"
    fingerprint: str  # SHA256:...
    created_at: float


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
                "INSERT INTO ssh_keys (name, public_key, fingerprint, created_at) VALUES (?,?,?,?)",
                (key.name, key.public_key, key.fingerprint, key.created_at),
            )

    def remove(self, name: str) -> None:
        with self._db.transaction() as tx:
            if tx.execute("DELETE FROM ssh_keys WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound("key", name)

    def list(self) -> list[SshKey]:
        return [
            SshKey(r["name"], r["public_key"], r["fingerprint"], r["created_at"])
            for r in self._db.query("SELECT * FROM ssh_keys ORDER BY name")
        ]


