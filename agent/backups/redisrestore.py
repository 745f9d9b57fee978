"""Restoring an RDB file into a redis add-on whose data may be in an append-only file.

Redis with its AOF on reads only the AOF at start, so a restore's RDB put beside it
would be ignored. While the server is stopped, its RDB and AOF are set aside (renamed
`*.previous`), the backup's RDB put in place, and the configuration says `appendonly
no`; it starts from the RDB, and once it answers, its AOF is switched on live and
written from memory (agent.addons.persistence). When it does not come up with the file,
or the file cannot be put in place (a full disk), or the restore is cancelled, the
set-aside files are put back and it starts as it was. A `*.previous` already there (a
restore that did not finish) is never overwritten: the restore is refused until it is
moved away. A failed switch to AOF leaves the restored data (in its RDB) and is retried
by the add-ons' reconciler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from agent.addons import persistence
from agent.addons.containers import AddonLayout
from agent.addons.model import Addon
from agent.addons.service import AddonService
from agent.backups import dumps
from agent.backups.model import RestoreFailed
from agent.backups.uncut import to_its_end
from agent.errors import BerthError

log = logging.getLogger(__name__)

_NAMES = (persistence.RDB_NAME, *persistence.AOF_NAMES)
_TEMP_NAME = ".dump.rdb.restoring"


async def restore_rdb(addons: AddonService, addon: Addon, path: Path) -> None:
    layout = addons.layout(addon)
    limits = addons.settings
    async with addons.quiet(addon):
        await asyncio.to_thread(_refuse_leftovers, layout.data)
        kept: list[str] | None = None  # None: nothing set aside yet
        try:
            await addons.engine.stop(addon.container, limits.stop_timeout)
            kept = []
            # A thread is not stopped by a cancellation: each file step ends before any
            # rollback, or its copy could land over the files put back.
            await to_its_end(asyncio.to_thread(_set_aside, layout.data, kept))
            await to_its_end(asyncio.to_thread(load_at_next_start, addon, layout, path))
            await addons.engine.start(addon.container)
            await addons.wait_ready(addon)
            await dumps.redis_command(addons.engine, addon, "DBSIZE",
                                      timeout=limits.command_timeout)
        except asyncio.CancelledError:  # never left stopped, its data set aside
            await to_its_end(_back_as_it_was(addons, addon, layout, kept, "cancelled"))
            raise
        except Exception as exc:  # disk full included: the previous data comes back
            await to_its_end(_back_as_it_was(addons, addon, layout, kept, exc))
            raise RestoreFailed(f"redis did not start with the backup ({exc}); "
                                "its previous data is back") from exc
        await to_its_end(asyncio.to_thread(_drop_previous, layout.data, kept))
        try:
            await persistence.switch_on(addons.engine, addon, layout,
                                        timeout=limits.restore_timeout,
                                        probe_timeout=limits.command_timeout)
        except BerthError as exc:  # the data is restored; the reconciler tries again
            log.error("AOF not switched on after the restore addon=%s error=%s",
                      addon.name, exc)


async def _back_as_it_was(addons: AddonService, addon: Addon, layout: AddonLayout,
                          kept: list[str] | None, cause: Exception | str) -> None:
    """The set-aside files back in place and the server started on them (`kept` None:
    nothing was set aside, its files are left as they are); when that fails too, one
    error saying where the previous data is."""
    try:
        await addons.engine.stop(addon.container, addons.settings.stop_timeout)
        if kept is not None:
            await asyncio.to_thread(_put_back, addon, layout, kept)
        await addons.engine.start(addon.container)
    except Exception as exc:
        raise RestoreFailed(f"redis did not start with the backup ({cause}) and its previous "
                            f"data could not be put back ({exc}): it is in "
                            f"{layout.data}/*.previous") from exc


def load_at_next_start(addon: Addon, layout: AddonLayout, rdb: Path) -> None:
    """With the server stopped: the RDB `rdb` is what it loads when it starts (no AOF
    to win over it)."""
    for name in persistence.AOF_NAMES:
        _remove(layout.data / name)
    temp = layout.data / _TEMP_NAME
    shutil.copyfile(rdb, temp)
    os.chmod(temp, 0o600)
    os.replace(temp, layout.data / persistence.RDB_NAME)
    persistence.write_conf(addon, layout, appendonly=False)


def _refuse_leftovers(data: Path) -> None:
    """A `*.previous` left by a restore that did not finish may be the only copy of the
    data before it: never overwritten, the restore refused until someone looks."""
    found = [f"{name}.previous" for name in _NAMES if (data / f"{name}.previous").exists()]
    if found:
        raise RestoreFailed(f"{data} holds {', '.join(found)} from a restore that did not "
                            "finish; keep or remove it, then restore again")


def _set_aside(data: Path, kept: list[str]) -> None:
    """The data files renamed `NAME.previous`, each name added to `kept` as it moves."""
    for name in _NAMES:
        if (data / name).exists():
            os.replace(data / name, data / f"{name}.previous")
            kept.append(name)


def _put_back(addon: Addon, layout: AddonLayout, kept: list[str]) -> None:
    for name in (*_NAMES, _TEMP_NAME):
        _remove(layout.data / name)
    for name in kept:
        os.replace(layout.data / f"{name}.previous", layout.data / name)
    persistence.write_conf(addon, layout, persistence.starts_with_aof(layout.data))


def _drop_previous(data: Path, kept: list[str]) -> None:
    for name in kept:
        _remove(data / f"{name}.previous")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
