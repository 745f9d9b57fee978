"""The agent's stop sequence, under one deadline that fits berth.service's stop limit.

systemd kills a unit that takes longer than `TimeoutStopSec` (90 s in berth.service) to
stop, mid-drain. Each step of the agent's stop has a wait of its own (30 s for the core
tasks, as much for running operations and again for those cancelled, for old containers
being stopped, then the proxy's drain), and in a row they could last twice that. So the
steps share one budget, `STOP_BUDGET`, below the unit's limit: each waits at most its own
timeout and at most what is left of the budget, minus a share kept for the proxy's
drain, which comes last (the proxy serves until then) and gets whatever is left.

`StopDeadline` is the pure clock arithmetic; `stop_in_order` runs the steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

STOP_BUDGET = 80.0  # seconds; berth.service has TimeoutStopSec=90 (exit and logs: the rest)
DRAIN_SHARE = 25.0  # seconds of the budget kept for the proxy's drain, at most drain_timeout
STEP_TIMEOUT = 30.0  # the longest any one step before the drain waits
_CANCEL_GRACE = 1.0  # a step cut at its deadline gets this long to unwind


class StopDeadline:
    """One deadline for every stop step; `reserve` seconds of it are kept for the last."""

    def __init__(self, budget: float, reserve: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + budget
        self._reserve = min(reserve, budget)

    def allow(self, wanted: float) -> float:
        """How long a step before the last may wait: `wanted`, or what the budget has left
        after the reserve (never below 0)."""
        return max(0.0, min(wanted, self._end - self._reserve - self._clock()))

    def last(self, wanted: float) -> float:
        """How long the last step may wait: `wanted`, or all the budget has left."""
        return max(0.0, min(wanted, self._end - self._clock()))


@dataclass
class StopSteps:
    """What the agent stops, in this order."""

    tasks: list[asyncio.Task[Any]]  # core tasks (cancelled) and the control API (ends itself)
    operations: set[asyncio.Task[Any]]  # running deploys: they may finish, then are cancelled
    settle: Callable[[float], Awaitable[None]]  # old containers still being stopped
    drain: Callable[[float], Awaitable[None]]  # the proxy's stop, given its timeout
    drain_timeout: float
    drain_slack: float = 1.0  # the drain may overrun its timeout by this (idle connections)
    closers: Sequence[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)


async def stop_in_order(steps: StopSteps, deadline: StopDeadline) -> None:
    """Stop the core tasks, let running operations finish (then cancel them), wait for old
    containers, close the other services, and drain the proxy, all within `deadline`."""
    for task in steps.tasks:
        if task.get_name() != "control-api":
            task.cancel()
    if steps.tasks:
        await asyncio.wait(steps.tasks, timeout=deadline.allow(STEP_TIMEOUT))
    await _finish_operations(steps.operations, deadline)
    await _bounded("old containers' stop", steps.settle(deadline.allow(STEP_TIMEOUT)),
                   deadline.allow(STEP_TIMEOUT))
    for what, close in steps.closers:
        await _bounded(what, close(), deadline.allow(STEP_TIMEOUT))
    await _bounded("the proxy's drain", steps.drain(deadline.last(steps.drain_timeout)),
                   deadline.last(steps.drain_timeout) + steps.drain_slack)


async def _finish_operations(operations: set[asyncio.Task[Any]], deadline: StopDeadline) -> None:
    """Give running operations their time, then cancel them (a cancelled deploy removes
    what it started and is marked failed) and give that its time."""
    if not operations:
        return
    log.info("waiting for %d running operation(s)", len(operations))
    _, pending = await asyncio.wait(set(operations), timeout=deadline.allow(STEP_TIMEOUT))
    for task in pending:
        task.cancel()
    if pending:
        _, left = await asyncio.wait(pending, timeout=deadline.allow(STEP_TIMEOUT))
        if left:
            log.warning("%d operation(s) still unwinding at the stop deadline", len(left))


async def _bounded(what: str, step: Awaitable[None], timeout: float) -> None:
    """Run `step` for at most `timeout` seconds; past that it is cancelled (and given a
    moment to unwind) and the stop goes on."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed while stopping", what, exc_info=task.exception())
        return
    log.warning("%s did not end within %.1fs of the stop deadline: cut short", what, timeout)
    task.cancel()
    await asyncio.wait({task}, timeout=_CANCEL_GRACE)
