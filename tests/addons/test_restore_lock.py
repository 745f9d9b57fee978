"""A restore holds its app for its whole length: the deployer's real locks and roll-out
over the deploy tests' fake engine, so an operation sent mid-restore is seen to wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent.addons.wiring import DeployedInstances
from agent.backups import restore
from agent.deploy.output import DeployOutput
from agent.services.configvars import ConfigChange
from tests.deploy.fakes import World, lines, world_in


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[World]:
    """The deploy tests' world: a real deployer over the fake engine."""
    with world_in(tmp_path) as built:
        yield built


def running(world: World, app: str) -> list[str]:
    return [c.id for c in world.runtime.containers_by_id.values()
            if c.spec.labels.get("berth.app") == app and c.state == "running"]


def waiting_output() -> tuple[DeployOutput, asyncio.Event]:
    """An operation's output, and an event set once it says it waits for the restore."""
    waits = asyncio.Event()

    def seen(line: str) -> None:
        if "Waiting for the operation in progress on shop" in line:
            waits.set()

    return DeployOutput(seen), waits


async def test_a_config_change_sent_mid_restore_starts_nothing_until_it_ends(deployed: World
                                                                             ) -> None:
    deployed.apps.create("shop")
    try:
        await deployed.deployer.deploy_push("shop", "a" * 40, deployed.source, lines()[0])
        assert running(deployed, "shop")
        instances = DeployedInstances(deployed.deployer, deployed.apps, deployed.releases)
        out, seen = lines()
        restoring, finish = asyncio.Event(), asyncio.Event()

        async def a_restore() -> None:
            async with restore._app_held_stopped(instances, "shop", out):
                restoring.set()
                await finish.wait()  # the data being put back

        task = asyncio.create_task(a_restore())
        await asyncio.wait_for(restoring.wait(), 10)
        assert running(deployed, "shop") == []
        config_out, config_waits = waiting_output()
        change = asyncio.create_task(deployed.deployer.release_config(
            "shop", ConfigChange({"K": "v"}), config_out))
        await asyncio.wait_for(config_waits.wait(), 10)
        assert not change.done() and running(deployed, "shop") == []
        assert deployed.releases.live("shop").number == 1
        finish.set()
        await asyncio.wait_for(task, 10)
        await asyncio.wait_for(change, 10)
        assert running(deployed, "shop") and deployed.releases.live("shop").number == 2
        assert deployed.apps.config("shop")["K"] == "v"
        assert any("Starting shop again" in line for line in seen)
    finally:
        await deployed.runtime.close()


async def test_a_push_to_an_app_not_running_waits_for_the_restore_too(deployed: World) -> None:
    deployed.apps.create("shop")
    instances = DeployedInstances(deployed.deployer, deployed.apps, deployed.releases)
    restoring, finish = asyncio.Event(), asyncio.Event()

    async def a_restore() -> None:
        async with restore._app_held_stopped(instances, "shop", lines()[0]):
            restoring.set()
            await finish.wait()

    try:
        task = asyncio.create_task(a_restore())
        await asyncio.wait_for(restoring.wait(), 10)
        push_out, push_waits = waiting_output()
        push = asyncio.create_task(deployed.deployer.deploy_push("shop", "a" * 40, deployed.source,
                                                              push_out))
        await asyncio.wait_for(push_waits.wait(), 10)
        assert not push.done() and running(deployed, "shop") == []
        finish.set()
        await asyncio.wait_for(task, 10)
        await asyncio.wait_for(push, 10)
        assert running(deployed, "shop")
    finally:
        await deployed.runtime.close()


class SlowStart:
    """An app's instances whose start waits to be let go; the lock's release recorded."""

    def __init__(self) -> None:
        self.starting, self.let_go = asyncio.Event(), asyncio.Event()
        self.calls: list[str] = []

    @asynccontextmanager
    async def hold(self, app: str, out: DeployOutput) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.calls.append("released")

    def running(self, app: str) -> bool:
        return True

    async def stop(self, app: str, out: DeployOutput) -> None:
        self.calls.append("stopped")

    async def start(self, app: str, out: DeployOutput) -> None:
        self.starting.set()
        await self.let_go.wait()
        self.calls.append("started")


async def test_a_cancelled_restore_releases_the_app_only_once_its_instances_started() -> None:
    """Cancelled while the instances start again (twice, as a shutdown may), the restore
    waits for the start to end before it lets the app go, then is cancelled."""
    instances = SlowStart()

    async def a_restore() -> None:
        async with restore._app_held_stopped(instances, "shop", lines()[0]):
            pass

    task = asyncio.create_task(a_restore())
    await asyncio.wait_for(instances.starting.wait(), 10)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done and instances.calls == ["stopped"]  # still holding, start not cut short
    instances.let_go.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert instances.calls == ["stopped", "started", "released"]
