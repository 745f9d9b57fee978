"""Releases as stored: numbering, persistence through `transition`, build logs."""

from __future__ import annotations

import json
import sqlite3
import time

from agent.errors import NotFound
from agent.releases import UNFINISHED, Release, ReleaseState, transition
from agent.store.db import Database, UnreadableRow

# A build log longer than this keeps its head and tail (a runaway build cannot fill the db).
MAX_LOG_CHARS = 512 * 1024


class ReleaseStore:
    """Creates releases, moves them between states, and keeps their build logs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, template: Release) -> Release:
        """Insert `template` as the app's next release number, in state pending."""
        with self._db.transaction() as tx:
            row = tx.execute(
                "SELECT COALESCE(MAX(number), 0) AS n FROM releases WHERE app = ?",
                (template.app,),
            ).fetchone()
            release = Release(
                app=template.app,
                number=row["n"] + 1,
                state=ReleaseState.PENDING,
                description=template.description,
                created_at=template.created_at,
                git_sha=template.git_sha,
                image=template.image,
                image_tag=template.image_tag,
                builder=template.builder,
                config=dict(template.config),
                processes=dict(template.processes),
                release_command=template.release_command,
                app_json=template.app_json,
            )
            tx.execute(
                """INSERT INTO releases (app, number, state, description, created_at,
                   git_sha, image, image_tag, builder, config, processes, release_command,
                   app_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    release.app, release.number, release.state.value, release.description,
                    release.created_at, release.git_sha, release.image, release.image_tag,
                    release.builder, json.dumps(dict(release.config)),
                    json.dumps(dict(release.processes)), release.release_command,
                    release.app_json,
                ),
            )
        return release

    def save(self, release: Release) -> None:
        """Persist fields filled in during the deploy (image, processes, ...)."""
        with self._db.transaction() as tx:
            self._write(tx, release)

    def move(self, release: Release, wanted: ReleaseState, *, error: str = "") -> Release:
        """Transition `release` and persist it; the table refuses illegal moves."""
        moved = transition(release, wanted, now=time.time(), error=error)
        with self._db.transaction() as tx:
            self._write(tx, moved)
        return moved

    def go_live(self, release: Release) -> Release:
        """Make `release` live and supersede the one that was, in one transaction.

        Superseding changes the old row's state alone (live -> superseded is always
        allowed), without reading it back: a live row that cannot be read (a hand edit,
        a bug) is superseded all the same, so a push repairs its app instead of failing
        after its instances took over the traffic."""
        live = transition(release, ReleaseState.LIVE, now=time.time())
        with self._db.transaction() as tx:
            tx.execute("UPDATE releases SET state = ? WHERE app = ? AND state = ?",
                       (ReleaseState.SUPERSEDED.value, release.app, ReleaseState.LIVE.value))
            self._write(tx, live)
        return live

    def _write(self, tx: sqlite3.Connection, r: Release) -> None:
        tx.execute(
            """UPDATE releases SET state=?, finished_at=?, git_sha=?, image=?, image_tag=?,
               builder=?, config=?, processes=?, release_command=?, app_json=?, error=?
               WHERE app=? AND number=?""",
            (
                r.state.value, r.finished_at, r.git_sha, r.image, r.image_tag, r.builder,
                json.dumps(dict(r.config)), json.dumps(dict(r.processes)), r.release_command,
                r.app_json, r.error, r.app, r.number,
            ),
        )

    def append_log(self, app: str, number: int, text: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                """UPDATE releases SET log = CASE WHEN length(log) < ? THEN log || ? ELSE log END
                   WHERE app = ? AND number = ?""",
                (MAX_LOG_CHARS, text, app, number),
            )

    def log(self, app: str, number: int) -> str:
        rows = self._db.query(
            "SELECT log FROM releases WHERE app = ? AND number = ?", (app, number)
        )
        if not rows:
            raise NotFound("release", f"{app} v{number}")
        return str(rows[0]["log"])

    # reads ---------------------------------------------------------------------------

    def get(self, app: str, number: int) -> Release:
        rows = self._db.query(
            "SELECT * FROM releases WHERE app = ? AND number = ?", (app, number)
        )
        if not rows:
            raise NotFound("release", f"{app} v{number}")
        return _from_row(rows[0])

    def recent(self, app: str, limit: int = 100) -> list[Release]:
        rows = self._db.query(
            "SELECT * FROM releases WHERE app = ? ORDER BY number DESC LIMIT ?", (app, limit)
        )
        return [_from_row(r) for r in rows]

    def live(self, app: str) -> Release | None:
        rows = self._db.query(
            "SELECT * FROM releases WHERE app = ? AND state = ?", (app, ReleaseState.LIVE.value)
        )
        return _from_row(rows[0]) if rows else None

    def unfinished(self) -> list[Release]:
        marks = ",".join("?" for _ in UNFINISHED)
        rows = self._db.query(
            f"SELECT * FROM releases WHERE state IN ({marks}) ORDER BY app, number",
            [s.value for s in UNFINISHED],
        )
        return [_from_row(r) for r in rows]

    def images_in_use(self, app: str, keep: int) -> set[str]:
        """Image tags of the live release and the `keep` newest successful ones."""
        rows = self._db.query(
            """SELECT image_tag FROM releases WHERE app = ? AND image_tag != ''
               AND state IN ('live', 'superseded') ORDER BY number DESC LIMIT ?""",
            (app, keep),
        )
        live = self.live(app)
        tags = {r["image_tag"] for r in rows}
        if live is not None and live.image_tag:
            tags.add(live.image_tag)
        return tags

    def prunable_tags(self, app: str, keep: int) -> set[str]:
        """Image tags no release needs: neither live, nor among the `keep` newest
        successful ones, nor used by a release still in progress (a deploy or a
        rollback running alongside the pruning)."""
        marks = ",".join("?" for _ in UNFINISHED)
        busy = self._db.query(
            f"SELECT DISTINCT image_tag FROM releases WHERE app = ? AND state IN ({marks})",
            [app, *(s.value for s in UNFINISHED)],
        )
        needed = self.images_in_use(app, keep) | {r["image_tag"] for r in busy}
        return self.image_tags(app) - needed

    def image_tags(self, app: str) -> set[str]:
        rows = self._db.query(
            "SELECT DISTINCT image_tag FROM releases WHERE app = ? AND image_tag != ''", (app,)
        )
        return {r["image_tag"] for r in rows}


def _from_row(row: sqlite3.Row) -> Release:
    try:
        return _release(row)
    except (ValueError, TypeError, KeyError) as exc:  # JSON, state, types
        raise UnreadableRow(f"release v{row['number']} of {row['app']}", str(exc)) from exc


def _release(row: sqlite3.Row) -> Release:
    return Release(
        app=row["app"],
        number=row["number"],
        state=ReleaseState(row["state"]),
        description=row["description"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        git_sha=row["git_sha"],
        image=row["image"],
        image_tag=row["image_tag"],
        builder=row["builder"],
        config=json.loads(row["config"]),
        processes=json.loads(row["processes"]),
        release_command=row["release_command"],
        app_json=row["app_json"],
        error=row["error"],
    )
