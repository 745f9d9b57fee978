"""Commands in an add-on have deadlines: a pg_dump stuck behind a lock fails the capture
within `capture_timeout` (recorded, logged, an event), and leaves neither its process in
the container nor its session in the server; a command whose output the container's own
`timeout` cannot end is given up by the agent, which kills it from the host; a redis
BGSAVE past the capture's deadline is stopped, so the next capture is not refused."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest
from addon_world import BUSYBOX_SETTINGS, STAND_IN_SETTINGS, World, ensure_busybox_images

from agent.addons import deadlines
from agent.addons import engine as engine_module
from agent.addons.engine import ExecTimedOut
from agent.addons.model import Addon
from agent.addons.settings import AddonSettings
from agent.backups import restore
from agent.backups.dumps import DumpFailed

pytestmark = [pytest.mark.docker]
# The deadlines hold under coreutils' `timeout` (the official Debian-based images) and
# busybox's (the `-alpine` ones; stand-ins here).
ON_BOTH = pytest.mark.parametrize("images", [STAND_IN_SETTINGS, BUSYBOX_SETTINGS],
                                  ids=["coreutils", "busybox"])


@pytest.fixture(scope="module", autouse=True)
def busybox_images() -> None:
    ensure_busybox_images()

CAPTURE_TIMEOUT = 2.0


def _processes(w: World, addon: Addon) -> str:
    """Every command line in the add-on's container, one a line."""
    return asyncio.run(w.engine.exec(addon.container, [
        "sh", "-c", 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done'],
        timeout=10)).stdout.decode()


def _sql(w: World, addon: Addon, sql: str) -> str:
    result = asyncio.run(w.engine.exec(addon.container, [
        "psql", "-U", addon.user, "-d", addon.user, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        timeout=10, user="postgres"))
    assert result.status == 0, result.stderr
    return result.stdout.decode().strip()


def _hold_lock(w: World, addon: Addon) -> None:
    """A session holding ACCESS EXCLUSIVE on `items` for a minute, in the background."""
    created = w.client.api.exec_create(addon.container, [
        "psql", "-U", addon.user, "-d", addon.user, "-c",
        ("SET application_name = 'locker'; BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;"
         " SELECT pg_sleep(60);")], user="postgres")
    w.client.api.exec_start(created["Id"], detach=True)
    deadline = time.monotonic() + 20
    while _sql(w, addon, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                         " WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock'"
                         " AND l.granted") != "1":
        assert time.monotonic() < deadline, "the lock was never taken"
        time.sleep(0.1)


@ON_BOTH
def test_a_capture_blocked_on_a_lock_fails_within_its_deadline_and_leaves_nothing(
        world: World, caplog: pytest.LogCaptureFixture, images: AddonSettings) -> None:
    world.service.settings = replace(images, capture_timeout=CAPTURE_TIMEOUT)
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    _sql(world, addon, "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
    _hold_lock(world, addon)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR), pytest.raises(DumpFailed, match="within 2 s"):
        asyncio.run(world.backups.capture(world.shop, None, world.out()))
    assert time.monotonic() - started < CAPTURE_TIMEOUT + engine_module.EXEC_GRACE
    assert "pg_dump" not in _processes(world, addon)
    # Killed without orphaning it to the container's PID 1: postgres did not take it for
    # a crashed backend of its own (and restart).
    assert b"terminated by signal" not in world.client.api.logs(addon.container)
    # Its server session is gone too, not queued behind the lock for the next minute.
    assert _sql(world, addon, "SELECT count(*) FROM pg_stat_activity "
                              "WHERE application_name LIKE 'berth-%'") == "0"
    assert "BackupFailed" in [e.kind for e in world.events.list(world.shop)]
    assert "backup failed" in caplog.text
    assert world.backups.store.of_app(world.shop) == []
    assert list(world.backups.directory(world.shop).iterdir()) == []  # no temp file left
    # Once the lock goes, capturing works again.
    _sql(world, addon, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'locker'")
    assert asyncio.run(world.backups.capture(world.shop, None, world.out())).id == "b2"


@ON_BOTH
def test_the_agent_gives_up_a_command_the_container_does_not_end_and_kills_it(
        world: World, monkeypatch: pytest.MonkeyPatch, images: AddonSettings) -> None:
    """The container's deadline made to fail (a minute later than the agent's): the
    agent's own deadline ends the wait, and the process is killed from the host (under
    busybox, the exec's own process: its `timeout` became the command)."""
    world.service.settings = images
    bounded = deadlines.bounded

    def late(argv: Sequence[str], timeout: float, flavour: deadlines.Flavour) -> list[str]:
        return bounded(argv, 60, flavour)
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    monkeypatch.setattr(deadlines, "bounded", late)
    monkeypatch.setattr(engine_module, "EXEC_GRACE", 1.0)
    started = time.monotonic()
    with pytest.raises(ExecTimedOut, match="within 1 s"):
        asyncio.run(world.engine.exec(addon.container, ["sleep", "47"], timeout=1))
    assert time.monotonic() - started < 10
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while "sleep 47" in _processes(world, addon):
        assert time.monotonic() < deadline, "the timed-out command still runs"
        time.sleep(0.1)


# A check on every row that sleeps a minute in Berth's own sessions (named berth-...):
# a restore's COPY of the row is stuck in it, the test's own writes are not.
SLOW_WHEN_RESTORED = (
    "CREATE FUNCTION slow_in_berths_sessions() RETURNS boolean LANGUAGE sql AS $$"
    " SELECT pg_sleep(CASE WHEN current_setting('application_name') LIKE 'berth-%'"
    " THEN 60 ELSE 0 END) IS NOT NULL $$;"
    " CREATE TABLE items (id int CHECK (slow_in_berths_sessions()));")


def test_a_restore_past_its_deadline_fails_and_leaves_the_previous_rows(world: World) -> None:
    world.service.settings = replace(STAND_IN_SETTINGS, restore_timeout=CAPTURE_TIMEOUT)
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    _sql(world, addon, SLOW_WHEN_RESTORED + " INSERT INTO items VALUES (1)")
    asyncio.run(world.backups.capture(world.shop, None, world.out()))
    _sql(world, addon, "INSERT INTO items VALUES (2)")
    started = time.monotonic()
    with pytest.raises(DumpFailed, match="within 2 s .*unchanged"):
        asyncio.run(restore.restore(world.backups, world.instances, world.shop, "b1",
                                    world.out()))
    # The deadline is pg_restore's; the steps around it (a database made and dropped)
    # take a few short commands more. Without it: the minute of the check.
    assert time.monotonic() - started < CAPTURE_TIMEOUT + engine_module.EXEC_GRACE + 10
    assert world.instances.up and "RestoreFailed" in [e.kind for e in world.events.list(world.shop)]
    assert "pg_restore" not in _processes(world, addon)
    assert _sql(world, addon, "SELECT count(*) FROM pg_stat_activity "
                              "WHERE application_name LIKE 'berth-%'") == "0"
    assert _sql(world, addon, "SELECT id FROM items ORDER BY id") == "1\n2"


def _redis(w: World, addon: Addon, *words: str) -> str:
    result = asyncio.run(w.engine.exec(addon.container, ["redis-cli", *words], timeout=10,
                                       env={"REDISCLI_AUTH": addon.password}))
    assert result.status == 0, result.stderr
    return result.stdout.decode().strip()


def test_a_redis_capture_past_its_deadline_stops_its_bgsave_and_the_next_one_works(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.service.settings = replace(STAND_IN_SETTINGS, capture_timeout=CAPTURE_TIMEOUT)
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    _redis(world, addon, "MSET", *[f"k{i}={i}" for i in range(30)])
    # Redis's own knob for slow saves: a second a key, a 30 s BGSAVE.
    _redis(world, addon, "CONFIG", "SET", "rdb-key-save-delay", "1000000")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(DumpFailed, match="within 2 s"):
        asyncio.run(world.backups.capture(world.cache, None, world.out()))
    assert time.monotonic() - started < CAPTURE_TIMEOUT + engine_module.EXEC_GRACE
    info = _redis(world, addon, "INFO", "persistence")
    assert "rdb_bgsave_in_progress:0" in info
    # Ended as Redis ends a save itself: not a failed save, so writes are still taken.
    assert "rdb_last_bgsave_status:ok" in info
    assert _redis(world, addon, "SET", "after", "1") == "OK"
    assert "redis-rdb-bgsave" not in _processes(world, addon)
    assert list(world.service.layout(addon).data.glob("temp-*.rdb")) == []
    _redis(world, addon, "CONFIG", "SET", "rdb-key-save-delay", "0")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    assert backup.size > 0 and world.backups.path(backup).is_file()
    assert "timed-out BGSAVE stopped" in caplog.text
