"""The agent's stop sequence (`agent.shutdown`): every step shares one deadline, so steps
that each wait their full timeout in a row still end within the budget, the proxy's
drain (last) keeps its share, and the budget fits berth.service's TimeoutStopSec."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from agent.shutdown import STOP_BUDGET, StopDeadline, StopSteps, stop_in_order

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_step_gets_its_own_wait_or_what_is_left_after_the_reserve() -> None:
    clock = FakeClock()
    deadline = StopDeadline(80.0, 25.0, clock)
    assert deadline.allow(30.0) == 30.0
    clock.now += 30.0
    assert deadline.allow(30.0) == 25.0  # 50 s left, 25 of them kept for the drain
    clock.now += 25.0
    assert deadline.allow(30.0) == 0.0
    assert deadline.last(30.0) == 25.0  # the drain has its share
    clock.now += 40.0
    assert deadline.last(30.0) == 0.0  # never negative
    assert StopDeadline(10.0, 25.0, clock).last(30.0) == 10.0  # reserve within the budget


class Recorder:
    """Steps that take as long as asked (up to `hang`), recording the timeouts given."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.given: dict[str, float] = {}

    def waiting(self, name: str) -> Any:
        async def step(timeout: float) -> None:
            self.given[name] = timeout
            await asyncio.sleep(self.hang)
        return step

    def closing(self, name: str) -> Any:
        async def step() -> None:
            self.given[name] = 0.0
            await asyncio.sleep(self.hang)
        return step


async def _stop_where_every_step_hangs(budget: float, reserve: float) -> tuple[float, Recorder]:
    steps = Recorder(hang=3600.0)
    forever = asyncio.Event()
    core = asyncio.create_task(_ignore_cancel(forever), name="reconciler")
    api = asyncio.create_task(forever.wait(), name="control-api")
    operation = asyncio.create_task(_ignore_cancel(forever), name="deploy")
    started = time.monotonic()
    await stop_in_order(StopSteps(
        [core, api], {operation}, steps.waiting("settle"), steps.waiting("drain"),
        drain_timeout=30.0, drain_slack=0.1,
        closers=[("certificates", steps.closing("certificates")),
                 ("firewall", steps.closing("firewall"))],
    ), StopDeadline(budget, reserve))
    elapsed = time.monotonic() - started
    forever.set()
    for task in (core, api, operation):
        task.cancel()
    await asyncio.gather(core, api, operation, return_exceptions=True)
    return elapsed, steps


async def _ignore_cancel(event: asyncio.Event) -> None:
    """A task that refuses to end when cancelled (a stuck deploy's cleanup)."""
    while not event.is_set():
        try:
            await event.wait()
        except asyncio.CancelledError:
            continue


def test_steps_that_all_hang_still_stop_within_the_budget() -> None:
    elapsed, steps = asyncio.run(_stop_where_every_step_hangs(budget=1.5, reserve=0.6))
    # Every step ran, and all ended within the budget and the drain's slack (plus a
    # margin for a busy machine), never a step's full 30 s.
    assert set(steps.given) == {"settle", "certificates", "firewall", "drain"}
    assert elapsed < 1.5 + 0.1 + 1.0, elapsed
    # The proxy's drain kept (about) its share although everything before it hung.
    assert 0.4 < steps.given["drain"] <= 0.6, steps.given


def test_quick_steps_leave_the_drain_its_full_timeout() -> None:
    async def stop() -> Recorder:
        steps = Recorder(hang=0.0)
        await stop_in_order(StopSteps([], set(), steps.waiting("settle"), steps.waiting("drain"),
                                      drain_timeout=30.0), StopDeadline(80.0, 25.0))
        return steps

    steps = asyncio.run(stop())
    assert steps.given["settle"] == 30.0
    assert 29.5 < steps.given["drain"] <= 30.0


def test_the_budget_fits_the_units_stop_limit() -> None:
    install = (REPO / "install.sh").read_text()
    limit = re.search(r"^TimeoutStopSec=(\d+)$", install, re.MULTILINE)
    assert limit is not None
    assert STOP_BUDGET + 5 <= int(limit.group(1))
