"""Backups proven with real rows and keys: capture, change, restore, read back exactly
what was captured; a failed restore leaves the data as it was; verify in a throwaway."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import shutil
import time
from pathlib import Path

import pytest
from addon_world import STAND_IN_SETTINGS, World

from agent.backups import redisrestore, restore
from agent.backups.dumps import DumpFailed
from agent.backups.model import BackupNotFound, InvalidBackupId
from agent.backups.restore import RestoreFailed

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_postgres_restore_brings_back_exactly_the_captured_rows(world: World) -> None:
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    url = addon.url
    world.psql(url, "CREATE TABLE items (id int PRIMARY KEY, name text);"
                    "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    backup = asyncio.run(world.backups.capture(world.shop, None, world.out()))
    path = world.backups.path(backup)
    assert backup.id == "b1" and backup.kind == "postgres"
    assert path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert hashlib.sha256(path.read_bytes()).hexdigest() == backup.sha256
    assert backup.size == path.stat().st_size and backup.server_version.startswith("15")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    world.psql(url, "UPDATE items SET name = 'changed' WHERE id = 1; DELETE FROM items WHERE id = 2;"
                    "INSERT INTO items VALUES (4, 'four');"
                    "CREATE TABLE later (x int); INSERT INTO later VALUES (1);"
                    "CREATE SEQUENCE later_seq; CREATE VIEW later_view AS SELECT id FROM items")
    asyncio.run(restore.restore(world.backups, world.instances, world.shop, "b1", world.out()))
    assert world.psql(url, "SELECT id, name FROM items ORDER BY id") == "1|one\n2|two\n3|three"
    # Exactly the capture: what was made after it is gone, nothing is left beside it.
    assert world.psql(url, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c"
                           " JOIN pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE nspname = 'public'") == "items,items_pkey"
    assert world.psql(url, "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
                           " WHERE datname LIKE 'berth_%'") == ""
    assert world.instances.calls == ["hold", "stop", "start"] and world.instances.up
    assert addon.password not in "\n".join(world.lines)


def test_a_failed_postgres_restore_leaves_the_previous_rows(world: World) -> None:
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    reader = f"reader_{world.tag}"
    world.psql(addon.url, f"CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2);"
                          f"CREATE ROLE {reader}; GRANT SELECT ON items TO {reader}")
    asyncio.run(world.backups.capture(world.shop, "postgres", world.out()))
    # The dump grants to a role that is gone by now: its restore fails half-way.
    world.psql(addon.url, f"REVOKE SELECT ON items FROM {reader}; DROP ROLE {reader};"
                          "DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (7);"
                          "CREATE TABLE later (x int)")
    with pytest.raises(DumpFailed, match="unchanged"):
        asyncio.run(restore.restore(world.backups, world.instances, world.shop, "b1", world.out()))
    assert world.psql(addon.url, "SELECT id FROM items ORDER BY id") == "2\n7"
    assert world.psql(addon.url, "SELECT count(*) FROM later") == "0"
    assert world.psql(addon.url, "SELECT count(*) FROM pg_database"
                                 " WHERE datname LIKE 'berth_%'") == "0"
    assert world.instances.up  # started again after the failure
    assert "RestoreFailed" in [e.kind for e in world.events.list(world.shop)]


def test_redis_restore_brings_back_exactly_the_captured_keys(world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "MSET", "a", "1", "b", "2", "c", "3")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    assert world.backups.path(backup).read_bytes()[:5] == b"REDIS"
    assert backup.server_version.startswith("7")
    world.redis(addon.url, "SET", "a", "changed")
    world.redis(addon.url, "DEL", "b")
    world.redis(addon.url, "SET", "d", "new")
    asyncio.run(restore.restore(world.backups, world.instances, world.cache, backup.id, world.out()))
    assert world.redis(addon.url, "MGET", "a", "b", "c") == "1\n2\n3"
    assert world.redis(addon.url, "EXISTS", "d") == "0"
    assert world.redis(addon.url, "DBSIZE") == "3"


def test_a_redis_backup_it_cannot_load_leaves_the_previous_keys(world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "before")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    world.redis(addon.url, "SET", "k", "after")
    garbage = b"REDIS0010 this is not an rdb file"
    world.backups.path(backup).write_bytes(garbage)
    # Recorded as if this were what was captured: the checksum passes, the load fails.
    world.db.query("UPDATE backups SET sha256 = ? WHERE number = 1",
                   (hashlib.sha256(garbage).hexdigest(),))
    began = time.monotonic()
    with pytest.raises(RestoreFailed, match="previous data is back"):
        asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    # Redis exits on the file and its restart policy brings it back to exit again: that is
    # known at once, not after the add-on's start deadline.
    assert time.monotonic() - began < STAND_IN_SETTINGS.start_timeout / 2
    assert world.redis(addon.url, "GET", "k") == "after"


def test_a_redis_restore_the_disk_refuses_leaves_the_previous_keys(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup's file cannot be put in place (the disk is full): the data set aside
    comes back and redis serves it, and the failure is a RestoreFailed like any other."""
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "before")
    asyncio.run(world.backups.capture(world.cache, None, world.out()))
    world.redis(addon.url, "SET", "k", "after")

    def full_disk(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(redisrestore.shutil, "copyfile", full_disk)
    with pytest.raises(RestoreFailed, match="No space left.*previous data is back"):
        asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    assert world.redis(addon.url, "GET", "k") == "after"
    assert "RestoreFailed" in [e.kind for e in world.events.list(world.cache)]
    data = world.service.layout(addon).data
    assert not [p.name for p in data.iterdir() if p.name.endswith((".previous", ".restoring"))]
    monkeypatch.undo()  # with the disk back, the same restore works
    asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    assert world.redis(addon.url, "GET", "k") == "before"


def test_a_redis_restore_cancelled_midway_leaves_the_previous_keys(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled once the data is set aside (the agent stopping, say): the data goes back
    and redis serves it before the cancellation goes on."""
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "before")
    asyncio.run(world.backups.capture(world.cache, None, world.out()))
    world.redis(addon.url, "SET", "k", "after")

    def cancelled(source: object, target: object) -> None:
        raise asyncio.CancelledError  # as the restore's task sees a cancellation here

    monkeypatch.setattr(redisrestore.shutil, "copyfile", cancelled)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    assert world.redis(addon.url, "GET", "k") == "after"
    data = world.service.layout(addon).data
    assert not [p.name for p in data.iterdir() if p.name.endswith((".previous", ".restoring"))]
    assert world.instances.up


def test_a_redis_restore_never_overwrites_data_an_unfinished_one_set_aside(
        world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "now")
    asyncio.run(world.backups.capture(world.cache, None, world.out()))
    left = world.service.layout(addon).data / "dump.rdb.previous"
    left.write_bytes(b"the only copy of older data")
    with pytest.raises(RestoreFailed, match="dump.rdb.previous from a restore that did not"):
        asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    assert left.read_bytes() == b"the only copy of older data"
    assert world.redis(addon.url, "GET", "k") == "now"


def test_a_damaged_file_is_refused_before_anything_stops(world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "v")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    with world.backups.path(backup).open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(RestoreFailed, match="damaged"):
        asyncio.run(restore.restore(world.backups, world.instances, world.cache, "b1", world.out()))
    assert world.instances.calls == []


def test_verify_restores_into_a_throwaway_container(world: World) -> None:
    world.apps.create(world.shop)
    pg = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    world.psql(pg.url, "CREATE TABLE a (x int); CREATE TABLE b (y int)")
    asyncio.run(world.backups.capture(world.shop, "postgres", world.out()))
    result = asyncio.run(restore.verify(world.backups, world.shop, "b1", world.out()))
    assert result["found"] == "2 tables"
    redis = asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    world.redis(redis.url, "MSET", "x", "1", "y", "2", "z", "3")
    asyncio.run(world.backups.capture(world.shop, "redis", world.out()))
    assert asyncio.run(restore.verify(world.backups, world.shop, "b2", world.out()))["found"] == "3 keys"
    left = world.client.api.containers(all=True, filters={"name": "verify-"})
    assert left == []


def test_ids_are_checked_and_never_reused(world: World) -> None:
    world.apps.create(world.shop)
    asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    with pytest.raises(InvalidBackupId):
        world.backups.get(world.shop, "12")
    with pytest.raises(BackupNotFound):
        world.backups.get(world.shop, "b9")
    first = asyncio.run(world.backups.capture(world.shop, None, world.out()))
    world.backups.store.remove(world.shop, first.number)
    assert asyncio.run(world.backups.capture(world.shop, None, world.out())).id == "b2"


def test_destroying_the_app_backs_up_then_removes_its_addons(world: World, tmp_path: Path) -> None:
    from agent.config import Config
    from agent.paths import PathSettings
    from agent.services.apps import Apps

    class Lifecycle:
        def __init__(self) -> None:
            self.left: list[str | None] = []

        async def refresh_routing(self, app_name: str) -> None: ...

        async def destroy(self, app_name: str, out: object) -> None:
            # What the deployer finds: the add-ons gone, so the app's network can go too.
            self.left = [await world.engine.state(f"berth-addon-{app_name}-{n}")
                         for n in ("postgres", "redis")]

    lifecycle = Lifecycle()
    apps = Apps(Config(paths=PathSettings(data_dir=tmp_path / "d", run_dir=tmp_path / "r")),
                world.apps, world.events, lifecycle, "true",
                before_destroy=world.backups.retire_app)
    world.apps.create(world.shop)
    pg = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    world.psql(pg.url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    asyncio.run(apps.destroy(world.shop, world.out()))
    assert lifecycle.left == [None, None]
    finals = world.backups.store.of_app(world.shop)
    assert [(b.addon, b.reason) for b in finals] == [("postgres", "final"), ("redis", "final")]
    assert world.service.store.of_app(world.shop) == []
    assert world.backups.path(finals[0]).stat().st_size > 0


def test_a_final_backup_that_fails_stops_the_destroy_with_the_addon_intact(
        world: World, tmp_path: Path) -> None:
    """No final backup, no destroy: the app, its add-on and its data stay as they were."""
    from agent.backups.dumps import DumpFailed
    from agent.config import Config
    from agent.paths import PathSettings
    from agent.services.apps import Apps

    class Lifecycle:
        def __init__(self) -> None:
            self.destroyed: list[str] = []

        async def refresh_routing(self, app_name: str) -> None: ...

        async def destroy(self, app_name: str, out: object) -> None:
            self.destroyed.append(app_name)

    lifecycle = Lifecycle()
    apps = Apps(Config(paths=PathSettings(data_dir=tmp_path / "d", run_dir=tmp_path / "r")),
                world.apps, world.events, lifecycle, "true",
                before_destroy=world.backups.retire_app)
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "kept", "yes")
    directory = world.backups.directory(world.cache)
    shutil.rmtree(directory, ignore_errors=True)
    directory.write_bytes(b"not a directory")  # the disk refuses the final backup
    with pytest.raises(DumpFailed, match="writing the backup of redis failed"):
        asyncio.run(apps.destroy(world.cache, world.out()))
    assert lifecycle.destroyed == []
    assert [a.name for a in world.service.store.of_app(world.cache)] == ["redis"]
    assert asyncio.run(world.engine.state(addon.container)) == "running"
    assert world.redis(addon.url, "GET", "kept") == "yes"


def test_scheduled_backups_run_when_due_prune_and_fail_loudly(world: World) -> None:
    from agent.backups.schedule import Schedule, next_run
    from agent.backups.scheduler import BackupScheduler

    now = [0.0]
    scheduler = BackupScheduler(world.backups, clock=lambda: now[0])
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "v")
    world.backups.store.set_schedule(world.cache, "redis", Schedule("03:00", 1, 0))
    now[0] = scheduler_next = next_run(Schedule("03:00"), addon.created_at) - 1
    assert asyncio.run(scheduler.run_due()) == []  # not yet
    now[0] = scheduler_next + 2
    first = asyncio.run(scheduler.run_due())
    assert first == ["b1"] and scheduler.status(addon)["backup_error"] is None
    assert asyncio.run(scheduler.run_due()) == []  # done for today
    now[0] += 86400
    assert asyncio.run(scheduler.run_due()) == ["b2"]
    assert [b.id for b in world.backups.store.of_app(world.cache)] == ["b2"]  # b1 pruned
    assert not (world.backups.directory(world.cache) / "b1-redis.rdb").exists()
    # A failure: stored, an event, shown; tried again an hour later, not at once.
    world.client.api.stop(addon.container, timeout=5)
    now[0] += 86400
    assert asyncio.run(scheduler.run_due()) == []
    status = scheduler.status(addon)
    assert status["backup_error"] and "redis" in status["backup_error"]
    assert "BackupFailed" in [e.kind for e in world.events.list(world.cache)]
    assert not scheduler.is_due(addon, now[0] + 60) and scheduler.is_due(addon, now[0] + 3600)
    now[0] += 3 * 86400
    assert scheduler.status(addon)["backup_overdue"]


def test_a_backup_the_disk_refuses_is_a_loud_failure(world: World,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """An error of the filesystem (disk full, the backups directory not one) fails the
    backup like any other: an event, the agent's log, the scheduler's record, and the
    scheduler lives on (it once escaped as an OSError and ended the scheduler's task)."""
    from agent.backups.scheduler import BackupScheduler

    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    directory = world.backups.directory(world.cache)
    shutil.rmtree(directory)
    directory.write_bytes(b"not a directory")
    scheduler = BackupScheduler(world.backups, clock=lambda: addon.created_at + 2 * 86400)
    with caplog.at_level(logging.ERROR, logger="agent.backups.service"):
        assert asyncio.run(scheduler.run_due()) == []
    error = scheduler.status(addon)["backup_error"]
    assert error and "backup of redis" in error and str(directory) in error
    assert "BackupFailed" in [e.kind for e in world.events.list(world.cache)]
    assert any("backup failed" in r.getMessage() and str(directory) in r.getMessage()
               for r in caplog.records)
    assert addon.password not in caplog.text


def test_a_postgres_restore_ends_a_session_left_open_on_the_database(world: World) -> None:
    """A client still connected (a psql left open, an app's worker not stopped) is
    disconnected for the swap, not a reason for the restore to fail."""
    import subprocess

    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    world.psql(addon.url, "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
    asyncio.run(world.backups.capture(world.shop, None, world.out()))
    world.psql(addon.url, "INSERT INTO items VALUES (2)")
    network = next(iter(world.client.api.inspect_container(addon.container)
                        ["NetworkSettings"]["Networks"]))
    lingering = subprocess.Popen(
        ["docker", "run", "--rm", "--network", network, f"--label=berth.managed=test-{world.tag}",
         "--entrypoint", "psql", "berth-stand-in/postgres:15", f"{addon.url}?sslmode=require",
         "-c", "SELECT pg_sleep(600)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while world.psql(addon.url, "SELECT count(*) FROM pg_stat_activity "
                                    "WHERE query LIKE 'SELECT pg_sleep%'") != "1":
            assert time.monotonic() < deadline and lingering.poll() is None
            time.sleep(0.2)
        asyncio.run(restore.restore(world.backups, world.instances, world.shop, "b1",
                                    world.out()))
        assert world.psql(addon.url, "SELECT id FROM items ORDER BY id") == "1"
        assert lingering.wait(timeout=30) != 0  # its session was ended
    finally:
        lingering.kill()
        lingering.wait(timeout=30)


@pytest.mark.parametrize("app", ["berth-previous", "berth-restoring", "postgres", "template1"])
def test_a_postgres_restore_keeps_the_data_of_an_app_named_like_its_own_databases(
        world: World, app: str) -> None:
    """The restore's temporary databases and its maintenance connection are never the
    add-on's own database, whatever the app is named: the restore brings back the
    capture and drops nothing live."""
    world.apps.create(app)
    addon = asyncio.run(world.service.create(app, "postgres", None, None, world.out()))
    world.psql(addon.url, "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
    asyncio.run(world.backups.capture(app, None, world.out()))
    world.psql(addon.url, "INSERT INTO items VALUES (2)")
    asyncio.run(restore.restore(world.backups, world.instances, app, "b1", world.out()))
    assert world.psql(addon.url, "SELECT id FROM items ORDER BY id") == "1"
    asyncio.run(restore.restore(world.backups, world.instances, app, "b1", world.out()))
    assert world.psql(addon.url, "SELECT id FROM items ORDER BY id") == "1"
    assert world.psql(addon.url, "SELECT count(*) FROM pg_database"
                                 " WHERE datname LIKE 'Berth %'") == "0"
