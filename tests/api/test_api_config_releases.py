"""Config changes racing each other and a push on a deployed app (the Deployer over the
deploy tests' fakes): every change ends up stored, and the last release carries every
change made with a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.services.config import ConfigVars
from agent.services.configvars import ConfigChange
from agent.store.events import EventStore
from tests.deploy.fakes import lines, world_in


async def test_changes_racing_a_push_and_each_other_all_stay(tmp_path: Path) -> None:
    with world_in(tmp_path) as world:
        try:
            world.apps.create("shop")
            await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
            config = ConfigVars(world.apps, EventStore(world.db), world.deployer)
            push = asyncio.create_task(
                world.deployer.deploy_push("shop", "b" * 40, world.source, lines()[0]))
            await asyncio.sleep(0)  # the push holds the app's lock
            changes = [
                config.change("shop", ConfigChange({"X": "1"}), lines()[0]),
                config.change("shop", ConfigChange({"Y": "2"}), lines()[0]),
                config.change("shop", ConfigChange({"Z": "3"}), lines()[0], restart=False),
                config.change("shop", ConfigChange({"W": "4"}), lines()[0]),
            ]
            await asyncio.gather(push, *changes)
            assert world.apps.config("shop") == {"W": "4", "X": "1", "Y": "2", "Z": "3"}
            live = world.releases.live("shop")
            assert {"W", "X", "Y"} <= set(live.config)
            assert live.number == 5  # two pushes, then three config releases
        finally:
            await world.runtime.close()
