"""What runs inside an add-on's container to dump it, restore it and read its version.

Postgres: `pg_dump -Fc` and `pg_restore` of the add-on's own image (so the client is
the server's version), over the local socket. Redis: BGSAVE, waited for by its save
counter, then the RDB file it renamed into place is read from the host; a BGSAVE past
its deadline is stopped (its saving child ended), so the next capture is not refused.

Every command has a deadline (the `[addons]` settings) and is killed at it. A postgres
client killed that way may leave its server session behind (waiting on a lock, say): it
runs under an application name of its own, and the sessions with that name are
terminated after it, so a timed-out restore rolls back at once and a timed-out dump
leaves nothing waiting.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from pathlib import Path
from typing import BinaryIO

from agent.addons import persistence
from agent.addons.containers import BACKUPS_MOUNT
from agent.addons.engine import AddonEngine, AddonEngineFailure, ExecResult, ExecTimedOut
from agent.addons.model import Addon
from agent.addons.persistence import info_field
from agent.errors import BerthError

log = logging.getLogger(__name__)

_POLL = 0.2


class DumpFailed(BerthError):
    status = 502


def first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else "no message"


async def postgres_dump(engine: AddonEngine, addon: Addon, sink: BinaryIO, *,
                        timeout: float, probe_timeout: float) -> None:
    try:
        result = await _postgres_client(
            engine, addon, ["pg_dump", "-Fc", "-U", addon.user, "-d", addon.user],
            timeout=timeout, probe_timeout=probe_timeout, user="postgres", sink=sink)
    except ExecTimedOut as exc:
        raise DumpFailed(f"pg_dump of {addon.name} did not finish within {timeout:g} s "
                         "and was stopped ([addons] capture_timeout)") from exc
    if result.status != 0:
        raise DumpFailed(f"pg_dump of {addon.name} failed: {first_line(result.stderr)}")


async def postgres_restore(engine: AddonEngine, addon: Addon, file_name: str, *,
                           database: str, timeout: float, probe_timeout: float) -> None:
    """Into `database` (a fresh one: agent.backups.pgrestore), in one transaction. Run as
    the container's root, who alone may read the backups (0600)."""
    argv = ["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner",
            "-U", addon.user, "-d", database, f"{BACKUPS_MOUNT}/{file_name}"]
    try:
        result = await _postgres_client(engine, addon, argv, timeout=timeout,
                                        probe_timeout=probe_timeout, user="root")
    except ExecTimedOut as exc:
        raise DumpFailed(f"pg_restore into {addon.name} did not finish within {timeout:g} s "
                         "and was stopped; its data is unchanged ([addons] restore_timeout)"
                         ) from exc
    if result.status != 0:
        raise DumpFailed(f"pg_restore into {addon.name} failed (its data is unchanged): "
                         f"{first_line(result.stderr)}")


async def postgres_version(engine: AddonEngine, addon: Addon, *, timeout: float) -> str:
    result = await engine.exec(addon.container, ["psql", "-U", addon.user, "-d", addon.user,
                                                 "-Atc", "SHOW server_version"],
                               timeout=timeout, user="postgres")
    return result.stdout.decode().strip() or "unknown"


async def _postgres_client(engine: AddonEngine, addon: Addon, argv: list[str], *,
                           timeout: float, probe_timeout: float, user: str,
                           sink: BinaryIO | None = None) -> ExecResult:
    """`argv` run under an application name of its own; when it times out, its server
    sessions are terminated before `ExecTimedOut` goes on."""
    tag = f"berth-{secrets.token_hex(8)}"
    try:
        return await engine.exec(addon.container, argv, timeout=timeout, user=user,
                                 env={"PGAPPNAME": tag}, stdout=sink)
    except ExecTimedOut:
        await _terminate_sessions(engine, addon, tag, probe_timeout)
        raise


async def _terminate_sessions(engine: AddonEngine, addon: Addon, tag: str,
                              timeout: float) -> None:
    sql = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           f"WHERE application_name = '{tag}'")  # tag: hex digits only
    try:
        result = await engine.exec(addon.container, ["psql", "-U", addon.user, "-d",
                                                     addon.user, "-Atc", sql],
                                   timeout=timeout, user="postgres")
    except AddonEngineFailure as exc:
        log.error("sessions of a timed-out command not ended addon=%s error=%s", addon.name, exc)
        return
    log.warning("timed-out command ended addon=%s sessions_terminated=%s", addon.name,
                result.stdout.decode().strip() or "?")


async def redis_command(engine: AddonEngine, addon: Addon, *words: str, timeout: float) -> str:
    result = await persistence.redis_cli(engine, addon, *words, timeout=timeout)
    if result.status != 0:
        raise DumpFailed(f"redis-cli {words[0]} on {addon.name} failed: "
                         f"{first_line(result.stderr or result.stdout)}")
    return result.stdout.decode("utf-8", "replace")


async def redis_snapshot(engine: AddonEngine, addon: Addon, *, timeout: float,
                         probe_timeout: float) -> None:
    """BGSAVE and wait until that save (not an earlier one) has finished well."""
    deadline = time.monotonic() + timeout
    before = int(info_field(await redis_command(engine, addon, "INFO", "persistence",
                                                timeout=probe_timeout), "rdb_saves") or 0)
    while "started" not in (answer := await redis_command(engine, addon, "BGSAVE",
                                                          timeout=probe_timeout)).lower():
        if time.monotonic() > deadline:
            raise DumpFailed(f"BGSAVE on {addon.name} refused: {answer.strip()}")
        await asyncio.sleep(_POLL)  # another save in progress: ours comes after it
    while True:
        info = await redis_command(engine, addon, "INFO", "persistence", timeout=probe_timeout)
        if (info_field(info, "rdb_bgsave_in_progress") == "0"
                and int(info_field(info, "rdb_saves") or 0) > before):
            if info_field(info, "rdb_last_bgsave_status") != "ok":
                raise DumpFailed(f"BGSAVE on {addon.name} failed (see its log: "
                                 f"docker logs {addon.container})")
            return
        if time.monotonic() > deadline:
            await _stop_bgsave(engine, addon, probe_timeout)
            raise DumpFailed(f"BGSAVE on {addon.name} did not finish within {timeout:g} s "
                             "and was stopped ([addons] capture_timeout)")
        await asyncio.sleep(_POLL)


async def _stop_bgsave(engine: AddonEngine, addon: Addon, timeout: float) -> None:
    """The saving child of a BGSAVE past its deadline ended, and its end awaited, so the
    next capture is not refused by a save still running. SIGUSR1 is Redis's own way to
    end a save without an error: any other signal marks the last save failed, and
    Redis (`stop-writes-on-bgsave-error`) then refuses the app's writes. The parent
    removes the child's temp file. A failure is logged; the capture's error stands."""
    try:
        pids = await engine.signal_processes(addon.container, "redis-rdb-bgsave",
                                             signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while info_field(await redis_command(engine, addon, "INFO", "persistence",
                                             timeout=timeout), "rdb_bgsave_in_progress") != "0":
            if time.monotonic() > deadline:
                raise DumpFailed(f"BGSAVE still running {timeout:g} s after SIGUSR1")
            await asyncio.sleep(_POLL)
    except BerthError as exc:
        log.error("timed-out BGSAVE not stopped addon=%s error=%s", addon.name, exc)
        return
    log.warning("timed-out BGSAVE stopped addon=%s pids=%s", addon.name,
                ",".join(map(str, pids)) or "none")


async def redis_version(engine: AddonEngine, addon: Addon, *, timeout: float) -> str:
    return info_field(await redis_command(engine, addon, "INFO", "server", timeout=timeout),
                      "redis_version") or "unknown"


def redis_rdb(data_dir: Path) -> Path:
    return data_dir / "dump.rdb"
