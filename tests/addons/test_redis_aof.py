"""Redis add-ons keep an append-only file (fsync every second), and a restore still
gives exactly the captured keys although the AOF, not the RDB, is what Redis reads at
start; an add-on made before the AOF was on keeps its keys while it is carried over.
All on the real engine with the stand-in redis image."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from addon_world import World

from agent.addons import persistence
from agent.addons.containers import redis_conf
from agent.backups import restore

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def info(world: World, url: str, name: str) -> str:
    for line in world.redis(url, "INFO", "persistence").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name} in INFO persistence")


def restart(world: World, container: str) -> None:
    """A power cut's aftermath, as far as Redis can tell: stopped, started again."""
    world.client.api.restart(container, timeout=10)
    asyncio.run(world.service.wait_ready(world.service.store.all()[0]))


def test_a_restore_survives_a_restart_with_the_aof_on(world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    layout = world.service.layout(addon)
    assert info(world, addon.url, "aof_enabled") == "1"
    assert "appendfsync everysec" in layout.redis_conf.read_text().splitlines()
    world.redis(addon.url, "MSET", "a", "1", "b", "2", "c", "3")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    world.redis(addon.url, "SET", "a", "changed")
    world.redis(addon.url, "DEL", "b")
    world.redis(addon.url, "SET", "d", "new")
    asyncio.run(restore.restore(world.backups, world.instances, world.cache, backup.id,
                                world.out()))
    assert world.redis(addon.url, "MGET", "a", "b", "c") == "1\n2\n3"
    assert world.redis(addon.url, "DBSIZE") == "3"
    assert info(world, addon.url, "aof_enabled") == "1"  # on again, written from memory
    assert persistence.conf_has_aof(layout) and persistence.aof_files(layout.data)
    assert not list(layout.data.glob("*.previous"))
    world.redis(addon.url, "SET", "e", "after")  # only in the AOF until the next snapshot
    restart(world, addon.container)
    assert world.redis(addon.url, "MGET", "a", "b", "c", "e") == "1\n2\n3\nafter"
    assert world.redis(addon.url, "EXISTS", "d") == "0"


def test_an_addon_made_before_the_aof_keeps_its_keys_and_gets_one(world: World) -> None:
    world.apps.create(world.cache)
    addon = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    layout = world.service.layout(addon)
    # As an earlier Berth left it: RDB only, `appendonly no` in its configuration.
    world.client.api.stop(addon.container, timeout=10)
    for found in persistence.aof_files(layout.data):
        shutil.rmtree(found)
    layout.redis_conf.write_text(redis_conf(addon, appendonly=False))
    world.client.api.start(addon.container)
    asyncio.run(world.service.wait_ready(addon))
    world.redis(addon.url, "MSET", "x", "1", "y", "2")
    world.redis(addon.url, "SAVE")
    # Its container lost (recreated with the new configuration), then the reconciler's
    # passes: the keys come back from the RDB, then the AOF is carried over.
    world.client.api.remove_container(addon.container, force=True)
    asyncio.run(world.service.reconcile())
    asyncio.run(world.service.wait_ready(addon))
    assert world.redis(addon.url, "MGET", "x", "y") == "1\n2"
    assert persistence.rdb_only(layout)

    async def carried_over() -> None:  # the switch runs in the background; quiet waits for it
        await world.service.reconcile()
        async with world.service.quiet(addon):
            pass

    asyncio.run(carried_over())
    assert info(world, addon.url, "aof_enabled") == "1"
    assert persistence.conf_has_aof(layout) and persistence.aof_files(layout.data)
    assert "AddonAofOn" in [e.kind for e in world.events.list(world.cache)]
    world.redis(addon.url, "SET", "z", "3")
    restart(world, addon.container)
    assert world.redis(addon.url, "MGET", "x", "y", "z") == "1\n2\n3"
