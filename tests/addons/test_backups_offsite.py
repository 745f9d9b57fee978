"""Off-host copies against a local S3-compatible server (moto in server mode, started
by s3_world): each backup uploaded and read back; a restore after the local file is deleted
fetches it and brings back exactly the captured rows (postgres) or keys (redis); a
failed upload is loud."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from addon_world import World

from agent.backups import restore
from agent.backups.model import BackupNotFound
from agent.backups.offsite import OffsiteFailed, OffsiteStore
from agent.backups.service import BackupService
from agent.backups.settings import BackupSettings
from agent.backups.store import BackupStore

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def with_offsite(world: World, settings: BackupSettings) -> BackupService:
    return BackupService(world.service, BackupStore(world.db), world.events,
                         OffsiteStore(settings))


def test_restore_from_the_offsite_copy_after_the_local_one_is_gone(
        world: World, s3: tuple[BackupSettings, Any]) -> None:
    settings, client = s3
    backups = with_offsite(world, settings)
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    world.psql(addon.url, "CREATE TABLE items (id int, name text);"
                          "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    backup = asyncio.run(backups.capture(world.shop, None, world.out()))
    key = f"srv1/{world.shop}/{backup.file_name}"
    stored = client.get_object(Bucket="offsite", Key=key)["Body"].read()
    local = backups.path(backup)
    assert stored == local.read_bytes()
    assert backups.describe(backup)["offsite"] == f"s3://offsite/{key}"
    local.unlink()
    world.psql(addon.url, "DELETE FROM items; INSERT INTO items VALUES (9, 'nine')")
    asyncio.run(restore.restore(backups, world.instances, world.shop, backup.id, world.out()))
    assert world.psql(addon.url, "SELECT id, name FROM items ORDER BY id") == "1|one\n2|two"
    assert local.read_bytes() == stored  # fetched back, checked


def test_redis_restore_from_the_offsite_copy_after_the_local_one_is_gone(
        world: World, s3: tuple[BackupSettings, Any]) -> None:
    settings, client = s3
    backups = with_offsite(world, settings)
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "MSET", "a", "1", "b", "2", "c", "3")
    backup = asyncio.run(backups.capture(world.cache, None, world.out()))
    stored = client.get_object(Bucket="offsite",
                               Key=f"srv1/{world.cache}/{backup.file_name}")["Body"].read()
    local = backups.path(backup)
    assert stored == local.read_bytes()
    local.unlink()
    world.redis(addon.url, "SET", "a", "changed")
    world.redis(addon.url, "DEL", "b")
    world.redis(addon.url, "SET", "d", "new")
    asyncio.run(restore.restore(backups, world.instances, world.cache, backup.id, world.out()))
    assert world.redis(addon.url, "MGET", "a", "b", "c") == "1\n2\n3"
    assert world.redis(addon.url, "EXISTS", "d") == "0"
    assert world.redis(addon.url, "DBSIZE") == "3"
    assert local.read_bytes() == stored  # fetched back, checked
    assert any(f"Fetching {backup.id} from s3://offsite/" in line for line in world.lines)


def test_a_tampered_copy_is_refused_and_a_failed_upload_is_loud(
        world: World, s3: tuple[BackupSettings, Any]) -> None:
    settings, client = s3
    backups = with_offsite(world, settings)
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "v")
    backup = asyncio.run(backups.capture(world.cache, None, world.out()))
    client.put_object(Bucket="offsite", Key=f"srv1/{world.cache}/{backup.file_name}",
                      Body=b"REDIS not what was captured")
    backups.path(backup).unlink()
    with pytest.raises(OffsiteFailed, match="SHA-256 differs"):
        asyncio.run(backups.ensure_local(backup, world.out()))
    assert not backups.path(backup).exists()
    nowhere = with_offsite(world, BackupSettings(
        s3_bucket="no-such-bucket", s3_endpoint=settings.s3_endpoint,
        s3_access_key="test", s3_secret_key="test"))
    second = asyncio.run(nowhere.capture(world.cache, None, world.out()))
    assert Path(nowhere.path(second)).is_file()  # the local backup stands
    assert nowhere.describe(second)["offsite"] is None
    assert "BackupUploadFailed" in [e.kind for e in world.events.list(world.cache)]
    assert any("kept on this server only" in line for line in world.lines)
    nowhere.path(second).unlink()
    with pytest.raises(BackupNotFound):
        nowhere.get(world.cache, second.id)


def backups_listed(backups: BackupService, backup: Any) -> str:
    """What `berth backups APP` prints of the agent's answer."""
    import argparse
    import io

    from agent.cli.registry import Context
    from agent.cli.verbs.backups import backups as listing

    class Answering:
        def call(self, method: str, path: str) -> Any:
            return [backups.describe(backup)]

    out = io.StringIO()
    ctx = Context(client=Answering(), out=out)  # type: ignore[arg-type]
    assert listing(ctx, argparse.Namespace(app=backup.app, json=False)) == 0
    return out.getvalue()


def test_a_failed_upload_is_retried_until_copied_and_shown_meanwhile(
        world: World, s3: tuple[BackupSettings, Any]) -> None:
    """A bucket that is not there yet: the backup stands local-only, `backups`, `addons`,
    `apps` and doctor say so; not retried before its backoff; once the bucket exists the
    scheduler's retry copies it and the warnings go."""
    from agent.backups.scheduler import BackupScheduler
    from agent.doctor import findings

    settings, client = s3
    backups = with_offsite(world, BackupSettings(
        s3_bucket="later", s3_endpoint=settings.s3_endpoint, s3_access_key="test",
        s3_secret_key="test", s3_prefix="srv1"))
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    world.redis(addon.url, "SET", "k", "v")
    backup = asyncio.run(backups.capture(world.cache, None, world.out()))
    now = [backup.created_at + 60]
    scheduler = BackupScheduler(backups, clock=lambda: now[0])
    view = backups.describe(backup)
    assert view["offsite"] is None and view["upload_attempts"] == 1
    assert "NoSuchBucket" in str(view["upload_error"])
    assert scheduler.status(addon)["not_copied"]["ids"] == [backup.id]
    problems = scheduler.problems(world.cache)
    assert [(p["problem"], p["detail"].split(" (")[0]) for p in problems] == [
        ("local-only", f"{backup.id} not copied off-host")]
    doctor = findings.backups([{"name": world.cache, "addons": 1, "backup_problems": problems}])
    assert [(f.level, f.subject) for f in doctor] == [("warn", f"backups {world.cache} redis")]
    assert "NOT COPIED OFF-HOST" in backups_listed(backups, backup)
    assert asyncio.run(scheduler.retry_uploads()) == []  # 5 minutes first
    now[0] += 301
    assert asyncio.run(scheduler.retry_uploads()) == []  # still no bucket: attempt 2
    assert backups.describe(backup)["upload_attempts"] == 2
    now[0] += 301
    assert asyncio.run(scheduler.retry_uploads()) == []  # now 10 minutes
    client.create_bucket(Bucket="later")
    now[0] += 600
    assert asyncio.run(scheduler.retry_uploads()) == [backup.id]
    key = f"srv1/{world.cache}/{backup.file_name}"
    assert client.get_object(Bucket="later", Key=key)["Body"].read() == \
        backups.path(backup).read_bytes()
    view = backups.describe(backup)
    assert view["offsite"] == f"s3://later/{key}" and view["upload_error"] is None
    assert scheduler.status(addon)["not_copied"] is None
    assert scheduler.problems(world.cache) == []
    assert f"s3://later/{key}" in backups_listed(backups, backup)
    assert asyncio.run(scheduler.retry_uploads()) == []  # done: never uploaded again
