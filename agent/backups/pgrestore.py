"""Restoring a postgres dump exactly: into a fresh database, swapped in by rename.

`pg_restore --clean` into the add-on's own database would keep whatever was made after
the capture (a new table, sequence, function...). Instead the dump goes into a fresh
database beside it (`Berth restoring`, from template0, owned by the add-on's role), in
one transaction; only once that is whole, one transaction ends the sessions on the
add-on's database, renames it away (`Berth previous`) and the restored one into its
place; then the previous one is dropped. Until the renames commit the add-on's database
is untouched, so a failure anywhere before them leaves the previous data (and the
half-made database is dropped). The two temporary names hold an uppercase letter and a
space, so no add-on's database (its app's name, `[a-z0-9-]`, with `_` for `-`) is ever
one of them: clearing them never drops live data. The maintenance connection goes to
template1, which every cluster has and no add-on's database is named (an app named
template1 gets `app_template1` as its add-on's role and database).
"""

from __future__ import annotations

import asyncio
import logging

from agent.addons.engine import AddonEngine
from agent.addons.model import Addon
from agent.backups import dumps
from agent.errors import BerthError

log = logging.getLogger(__name__)

_SWAP_ATTEMPTS = 3
RESTORING = "Berth restoring"
PREVIOUS = "Berth previous"


def _quoted(database: str) -> str:
    """`database` as an SQL identifier (Berth's names hold no double quote)."""
    return f'"{database}"'


async def restore_exact(engine: AddonEngine, addon: Addon, file_name: str, *,
                        timeout: float, probe_timeout: float) -> None:
    """The add-on's database replaced by exactly the dump `file_name`, or left as it was."""
    if addon.user in (RESTORING, PREVIOUS):  # app names cannot make them; never drop live data
        raise dumps.DumpFailed(f"restore into {addon.name} refused: its database is named "
                               f"{addon.user} (its data is unchanged)")
    for leftover in (RESTORING, PREVIOUS):  # of an attempt the agent did not finish
        await _drop(engine, addon, leftover, timeout)
    await _sql(engine, addon, f'CREATE DATABASE {_quoted(RESTORING)} OWNER "{addon.user}" '
               "TEMPLATE template0", probe_timeout, "creating a database to restore into")
    try:
        await dumps.postgres_restore(engine, addon, file_name, database=RESTORING,
                                     timeout=timeout, probe_timeout=probe_timeout)
        await _swap(engine, addon, probe_timeout)
    except BerthError:
        try:
            await _drop(engine, addon, RESTORING, timeout)
        except BerthError as exc:
            log.error("half-restored database not dropped addon=%s error=%s", addon.name, exc)
        raise
    try:
        await _drop(engine, addon, PREVIOUS, timeout)
    except BerthError as exc:  # the restore stands; the next one drops it
        log.error("previous database not dropped addon=%s error=%s", addon.name, exc)


async def _swap(engine: AddonEngine, addon: Addon, timeout: float) -> None:
    """The renames, in one transaction after ending the sessions on the add-on's
    database; tried again when a client connected in between (the rename refuses while
    one is there)."""
    sql = (_ended_sessions(addon.user)
           + f"ALTER DATABASE {_quoted(addon.user)} RENAME TO {_quoted(PREVIOUS)};"
           f" ALTER DATABASE {_quoted(RESTORING)} RENAME TO {_quoted(addon.user)};")
    for attempt in range(1, _SWAP_ATTEMPTS + 1):
        try:
            await _sql(engine, addon, sql, timeout, "swapping the restored database in")
            return
        except dumps.DumpFailed as exc:
            if attempt == _SWAP_ATTEMPTS or "other users" not in str(exc):
                raise
            log.warning("a client reconnected during the swap addon=%s attempt=%d",
                        addon.name, attempt)
            await asyncio.sleep(1.0)


def _ended_sessions(database: str) -> str:
    """SQL ending every other session on `database` (the rename or drop after it waits
    a few seconds for them to go)."""
    return ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid();")


async def _drop(engine: AddonEngine, addon: Addon, database: str, timeout: float) -> None:
    await _sql(engine, addon, _ended_sessions(database), timeout, f"ending sessions on {database}")
    await _sql(engine, addon, f"DROP DATABASE IF EXISTS {_quoted(database)}", timeout,
               f"dropping {database}")


async def _sql(engine: AddonEngine, addon: Addon, sql: str, timeout: float, doing: str) -> None:
    """`sql` as the add-on's role over the local socket (names here are identifiers Berth
    made: the role is the app's name with `_` for `-`)."""
    result = await engine.exec(addon.container, [
        "psql", "-U", addon.user, "-d", "template1", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        timeout=timeout, user="postgres")
    if result.status != 0:
        raise dumps.DumpFailed(f"restore into {addon.name} failed {doing} (its data is "
                               f"unchanged): {dumps.first_line(result.stderr)}")
