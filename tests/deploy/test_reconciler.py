"""The reconciler against the fakes: instances replaced on the engine's die events, and
what killed pushes left removed at boot."""

from __future__ import annotations

import asyncio
import time

from agent.deploy.events import ContainerDied
from agent.deploy.reconciler import Reconciler
from agent.store.events import EventStore
from tests.deploy.fakes import lines, world  # noqa: F401 (fixture)


def reconciler_of(world, **options) -> Reconciler:
    return Reconciler(world.apps, world.releases, world.runtime, world.rollout,
                      world.deployer, EventStore(world.db), **options)


async def test_the_boot_removes_what_killed_pushes_left(world, tmp_path):
    builds = tmp_path / "data" / "builds"
    (builds / "shop-aaaaaaaa-x1" / "src").mkdir(parents=True)
    (builds / "shop-aaaaaaaa-x1" / "push.tar").write_bytes(b"tar")
    (builds / "stray-file").write_text("x")
    world.apps.create("shop")
    world.apps.create("blog")
    await reconciler_of(world, builds=builds).boot()
    assert builds.is_dir() and list(builds.iterdir()) == []
    assert sorted(world.runtime.leftovers_removed) == ["blog", "shop"]


async def deaths_of(*deaths):
    for death in deaths:
        yield death


def death(container, exit_code: int = 137) -> ContainerDied:
    return ContainerDied(container.id, container.spec.labels["berth.app"], "process",
                         int(container.spec.labels["berth.release"]), "web.1", exit_code, 0.0)


async def test_a_dead_instance_is_replaced_as_soon_as_the_engine_says_so(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state = "exited"  # docker kill: the restart policy leaves it
        reconciler = reconciler_of(world)
        started = time.monotonic()
        await reconciler.follow(deaths_of(death(web)), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        assert time.monotonic() - started < 5
        await world.deployer.settled(10)  # the dead one removed
        (replacement,) = world.runtime.containers_by_id.values()
        assert replacement.id != web.id and replacement.state == "running"
        (event, *_) = EventStore(world.db).list("shop")
        assert (event.kind, event.message) == (
            "InstanceReplaced", "web.1 was killed (SIGKILL, exit status 137); replaced")
    finally:
        await world.runtime.close()


async def test_an_instance_its_restart_policy_brings_back_is_left_alone(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state, web.oom_killed = "restarting", True
        reconciler = reconciler_of(world)
        await reconciler.follow(deaths_of(death(web)), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        assert list(world.runtime.containers_by_id) == [web.id]
        (event, *_) = EventStore(world.db).list("shop")
        assert (event.kind, event.message) == ("InstanceRestarted", (
            "web.1 ran out of memory (OOM: killed at its memory limit); "
            "restarted by its restart policy"))
    finally:
        await world.runtime.close()


async def test_deaths_during_an_operation_are_the_operations(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state = "exited"
        reconciler = reconciler_of(world)
        async with world.deployer.app_lock("shop", lines()[0]):
            await reconciler.follow(deaths_of(death(web)), settle=0.05)
        assert not reconciler._watching
        assert list(world.runtime.containers_by_id) == [web.id]
    finally:
        await world.runtime.close()
