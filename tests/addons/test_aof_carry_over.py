"""A redis add-on's switch to its AOF, begun by the reconciler, runs outside the
reconciler's lock: other add-ons' reconciliation and `quiet()` never wait for it, a
`quiet()` on that add-on does; a failed switch waits out a growing backoff. The stores
are real; the engine and the switch itself are fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_addon_reconcile_races import service, stored_addon

from agent.addons import persistence
from agent.addons.carryover import AofCarryOver
from agent.addons.model import Addon
from agent.errors import BerthError


class HeldSwitch:
    """persistence.switch_on, held at a gate until let go (or told to fail)."""

    def __init__(self) -> None:
        self.began, self.gate = asyncio.Event(), asyncio.Event()
        self.calls: list[str] = []
        self.fail = False

    async def __call__(self, engine: object, addon: Addon, layout: object, *,
                       timeout: float, probe_timeout: float) -> None:
        self.calls.append(addon.name)
        self.began.set()
        await self.gate.wait()
        if self.fail:
            raise persistence.AofNotSwitchedOn("BGREWRITEAOF failed")


def test_a_long_switch_holds_neither_the_reconciler_nor_other_addons(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addons, engine, store = service(tmp_path, hold="nothing")
    slow = stored_addon()  # redis, its data RDB only
    other = Addon(app="shop", name="postgres", kind="postgres", version="15",
                  image="postgres:15", variable="DATABASE_URL", password="pw", created_at=0.0)
    for addon in (slow, other):
        store.add(addon)
        addons.layout(addon).data.mkdir(parents=True)
        engine.containers[addon.container] = ("running", "shop", addon.name)
    persistence.write_conf(slow, addons.layout(slow), appendonly=False)
    switch = HeldSwitch()
    monkeypatch.setattr(persistence, "switch_on", switch)

    async def scenario() -> None:
        await asyncio.wait_for(addons.reconcile(), 5)  # returns with the switch under way
        await asyncio.wait_for(switch.began.wait(), 5)
        engine.containers[other.container] = ("exited", "shop", "postgres")
        await asyncio.wait_for(addons.reconcile(), 5)  # the other one is brought back
        assert f"start {other.container}" in engine.calls
        async with addons.quiet(other):  # at once, not after the switch
            pass
        waiting = asyncio.create_task(_quiet(addons, slow))
        done, _ = await asyncio.wait([waiting], timeout=0.2)
        assert not done  # a restore of that add-on waits for its switch to end
        switch.gate.set()
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())
    assert switch.calls == ["redis"]  # the second pass began no second switch


async def _quiet(addons: object, addon: Addon) -> None:
    async with addons.quiet(addon):  # type: ignore[attr-defined]
        pass


def test_a_failed_switch_is_tried_again_only_after_a_growing_backoff() -> None:
    now = [1000.0]
    outcomes: list[str] = []

    async def switch(addon: Addon) -> None:
        outcomes.append("tried")
        raise BerthError("the AOF could not be written")

    carry = AofCarryOver(switch, first_backoff=60.0, last_backoff=200.0, clock=lambda: now[0])
    addon = stored_addon()

    async def attempt() -> bool:
        began = carry.start(addon)
        await carry.settled(addon.container)
        return began

    async def scenario() -> list[bool]:
        seen = [await attempt(), await attempt()]  # at once again: refused
        now[0] += 60.0
        seen += [await attempt(), await attempt()]  # after 60 s; then 120 s to wait
        now[0] += 119.0
        seen.append(await attempt())
        now[0] += 1.0
        seen.append(await attempt())
        now[0] += 200.0  # the backoff stops growing at its last value
        seen.append(await attempt())
        return seen

    assert asyncio.run(scenario()) == [True, False, True, False, False, True, True]
    assert len(outcomes) == 4


def test_a_switch_that_worked_is_not_held_back() -> None:
    fails = [True]

    async def switch(addon: Addon) -> None:
        if fails.pop(0) if fails else False:
            raise BerthError("not yet")

    now = [0.0]
    carry = AofCarryOver(switch, first_backoff=10.0, clock=lambda: now[0])
    addon = stored_addon()

    async def scenario() -> list[bool]:
        seen = []
        for step in (0.0, 10.0, 0.0):
            now[0] += step
            seen.append(carry.start(addon))
            await carry.settled(addon.container)
        return seen

    assert asyncio.run(scenario()) == [True, True, True]
