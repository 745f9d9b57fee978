"""Redis add-ons' persistence: an append-only file (fsync every second) beside the RDB
snapshots, so a power cut loses about a second of writes, not up to an hour.

With `appendonly yes` Redis reads only the AOF at start: data that is an RDB file alone
(an add-on made before AOF was on, or a restore's file just put in place) would come up
empty, and its next save would overwrite the RDB with nothing. So the configuration
says `appendonly yes` only when the data directory holds an AOF already, or no data at
all; otherwise Redis starts from its RDB with `appendonly no` and is switched on live
(`CONFIG SET appendonly yes` writes the AOF from memory), and the configuration follows
once that AOF is written whole. The configuration file is written beside the old one
and renamed over it. The container binds that very file, so a container running keeps
the old one: Redis reads it only at start, and Docker binds the file anew at each start.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from agent.addons import containers
from agent.addons.containers import AddonLayout
from agent.addons.engine import AddonEngine, ExecResult
from agent.addons.model import Addon
from agent.errors import BerthError

AOF_NAMES = ("appendonlydir", "appendonly.aof")  # Redis 7's directory, Redis 6's file
RDB_NAME = "dump.rdb"
_POLL = 0.2


class AofNotSwitchedOn(BerthError):
    status = 502


def aof_files(data: Path) -> list[Path]:
    return [data / name for name in AOF_NAMES if (data / name).exists()]


def starts_with_aof(data: Path) -> bool:
    """Whether Redis may start with `appendonly yes` on `data` without losing any of it."""
    return bool(aof_files(data)) or not (data / RDB_NAME).exists()


def write_conf(addon: Addon, layout: AddonLayout, appendonly: bool) -> None:
    """The configuration written whole beside the old one, flushed, then renamed over it:
    a crash at any point leaves one or the other, never a file without `requirepass`."""
    text = containers.redis_conf(addon, appendonly=appendonly).encode()
    temp = layout.redis_conf.with_name(f".{layout.redis_conf.name}.writing")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o644)  # read by the container's redis user, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(fd)
        os.replace(temp, layout.redis_conf)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(layout.redis_conf.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def conf_has_aof(layout: AddonLayout) -> bool:
    return "appendonly yes" in _conf_lines(layout)


def rdb_only(layout: AddonLayout) -> bool:
    """Whether its configuration says `appendonly no` (its AOF still to be switched on)."""
    return "appendonly no" in _conf_lines(layout)


def _conf_lines(layout: AddonLayout) -> list[str]:
    try:
        return layout.redis_conf.read_text().splitlines()
    except OSError:
        return []


async def redis_cli(engine: AddonEngine, addon: Addon, *words: str, timeout: float
                    ) -> ExecResult:
    """`redis-cli WORDS` in the add-on's container, the password in its environment (never
    on a command line)."""
    return await engine.exec(addon.container, ["redis-cli", *words], timeout=timeout,
                             env={"REDISCLI_AUTH": addon.password})


async def _redis(engine: AddonEngine, addon: Addon, *words: str, timeout: float) -> str:
    result = await redis_cli(engine, addon, *words, timeout=timeout)
    answer = result.stdout.decode("utf-8", "replace")
    if result.status != 0 or answer.startswith("ERR"):
        raise AofNotSwitchedOn(f"redis-cli {words[0]} on {addon.name}: "
                               f"{(answer or result.stderr.decode()).strip()[:200]}")
    return answer


def info_field(info: str, name: str) -> str:
    """The value of `name` in the answer to redis' INFO ("" when it is not there)."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""


async def switch_on(engine: AddonEngine, addon: Addon, layout: AddonLayout, *,
                    timeout: float, probe_timeout: float) -> None:
    """AOF turned on in the running server, written from its memory, then in its
    configuration; `AofNotSwitchedOn` when the rewrite fails or outlasts `timeout`."""
    deadline = time.monotonic() + timeout
    await _redis(engine, addon, "CONFIG", "SET", "appendfsync", "everysec",
                 timeout=probe_timeout)
    await _redis(engine, addon, "CONFIG", "SET", "appendonly", "yes", timeout=probe_timeout)
    while True:
        info = await _redis(engine, addon, "INFO", "persistence", timeout=probe_timeout)
        if (info_field(info, "aof_enabled") == "1"
                and info_field(info, "aof_rewrite_in_progress") == "0"
                and info_field(info, "aof_rewrite_scheduled") == "0"):
            break
        if time.monotonic() > deadline:
            raise AofNotSwitchedOn(f"the AOF of {addon.name} was not written within "
                                   f"{timeout:g} s")
        await asyncio.sleep(_POLL)
    if info_field(info, "aof_last_bgrewrite_status") != "ok" or not aof_files(layout.data):
        raise AofNotSwitchedOn(f"writing the AOF of {addon.name} failed "
                               f"(docker logs {addon.container})")
    await asyncio.to_thread(write_conf, addon, layout, True)
