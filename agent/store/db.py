"""The SQLite database the agent owns: opening it in WAL mode, schemas, transactions.

One process writes (the agent); transactions are short and run on the event loop's thread
(they take microseconds to milliseconds, less than a thread hop). Each subsystem that owns
tables declares them as a tuple of `CREATE ... IF NOT EXISTS` statements and passes it to
`Database.open`; this module knows no table by name.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agent.errors import BerthError

Schema = Sequence[str]


class UnreadableRow(BerthError):
    """A stored row that cannot be read back (hand-edited, or written by a bug): the
    operation on that app fails with this line, other apps are unaffected."""

    status = 500

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"the stored {what} cannot be read: {reason}")
        self.what = what


class Database:
    """A connection to the state database, with a transaction helper."""

    def __init__(self, connection: sqlite3.Connection, path: Path | None) -> None:
        self._conn = connection
        self.path = path
        self._schemas: list[Schema] = []

    @classmethod
    def open(cls, path: Path | None, schemas: Iterable[Schema] = ()) -> Database:
        """Open (creating if needed) the database at `path`; None means in memory."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists()
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        else:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        db = cls(conn, path)
        db._schemas = list(schemas)
        db._create_tables()
        return db

    def _create_tables(self) -> None:
        with self.transaction() as tx:
            for schema in self._schemas:
                for statement in schema:
                    tx.execute(statement)

    def copy_to(self, target: Path) -> None:
        """A consistent copy of the whole database in a new file `target` (SQLite's
        online backup: writers wait the few milliseconds it takes), root's only."""
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        copy = sqlite3.connect(target)
        try:
            self._conn.backup(copy)
        finally:
            copy.close()

    def replace_with(self, source: Path) -> None:
        """Make this database's content that of the database file `source`, in one
        step (readers see the old content or the new), then create any table the
        source lacks (one written by an older Berth)."""
        other = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            other.backup(self._conn)
        finally:
            other.close()
        self._create_tables()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back if the block raises."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        """Run a read-only statement outside an explicit transaction."""
        return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self._conn.close()
