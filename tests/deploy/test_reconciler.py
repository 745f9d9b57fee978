"""The reconciler against the fakes: instances replaced on the engine's die events, and
what killed pushes left removed at boot."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from agent.deploy.events import ContainerDied
from agent.deploy.oomlog import OomKill
from agent.deploy.reconciler import OOM_WINDOW, Reconciler
from agent.store.events import EventStore
from tests.deploy.fakes import lines


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
            "InstanceReplaced", ("web.1 was killed (SIGKILL, exit status 137); replaced; "
                                 "its last lines:\n  | fake log line"))
    finally:
        await world.runtime.close()


async def test_an_instance_its_restart_policy_brings_back_is_left_alone(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state, web.oom_killed, web.memory_limit = "restarting", True, 64 << 20
        reconciler = reconciler_of(world)
        await reconciler.follow(deaths_of(death(web)), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        assert list(world.runtime.containers_by_id) == [web.id]
        (event, *_) = EventStore(world.db).list("shop")
        assert (event.kind, event.message) == ("InstanceRestarted", (
            "web.1 ran out of memory (limit 64 MB); restarted by its restart policy; "
            "its last lines:\n  | fake log line"))
    finally:
        await world.runtime.close()


class KernelSaw:
    """The kernel's log of OOM kills, as the reconciler asks it."""

    def __init__(self, *kills: OomKill) -> None:
        self.asked: list[tuple[str, float]] = []
        self._kills = kills

    def kills(self, container_id: str, since: float = 0.0) -> list[OomKill]:
        self.asked.append((container_id, since))
        return [kill for kill in self._kills if kill.container_id == container_id]


async def test_a_death_the_kernel_logged_as_an_oom_kill_says_out_of_memory(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state, web.memory_limit = "restarting", 32 << 20  # the engine flagged nothing
        kernel = KernelSaw(OomKill(web.id, at_limit=True, task="python3", pid=7),
                           OomKill("c-other", at_limit=True))
        reconciler = reconciler_of(world, oom=kernel)
        await reconciler.follow(deaths_of(replace(death(web), time=1000.0)), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        (event, *_) = EventStore(world.db).list("shop")
        assert (event.kind, event.message) == ("InstanceRestarted", (
            "web.1 ran out of memory (limit 32 MB); restarted by its restart policy; "
            "its last lines:\n  | fake log line"))
        assert kernel.asked == [(web.id, 1000.0 - OOM_WINDOW)]
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


async def test_a_process_killed_in_an_instance_that_lives_on_is_recorded(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.memory_limit = 32 << 20
        reconciler = reconciler_of(world)
        reconciler.noticed_oom(OomKill(web.id, at_limit=True, task="gunicorn"), settle=0.05)
        reconciler.noticed_oom(OomKill("c-unknown", at_limit=True), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        (event, *_) = EventStore(world.db).list("shop")
        assert (event.kind, event.message) == ("ProcessKilled", (
            "web.1: gunicorn ran out of memory (limit 32 MB) and was killed; web.1 runs on"))
    finally:
        await world.runtime.close()


async def test_a_kill_its_instance_died_of_is_left_to_the_deaths_event(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        web.state = "restarting"  # the restart policy's doing
        reconciler = reconciler_of(world)
        reconciler.noticed_oom(OomKill(web.id, at_limit=True, task="python3"), settle=0.1)
        await reconciler.follow(deaths_of(death(web)), settle=0.05)
        await asyncio.wait_for(asyncio.gather(*reconciler._watching), 10)
        assert [e.kind for e in EventStore(world.db).list("shop")
                if e.kind.startswith(("Instance", "Process"))] == ["InstanceRestarted"]
    finally:
        await world.runtime.close()
