"""The scheduler seam: start N instances of a release and say where each answers.

A roll-out (agent.deploy.rollout) decides which instances a release needs, checks them
and swaps the route; *where* they run is a scheduler's business. `Scheduler` is that one
interface, so a cluster scheduler (Docker Swarm, say) plugs in beside `LocalScheduler`,
which runs every instance as a container of this host's engine with its web port
published on 127.0.0.1 from `deploy.port_range_*`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol, TypeVar

from agent.config import DeploySettings
from agent.deploy.hostports import pick_port
from agent.deploy.output import DeployOutput
from agent.deploy.plan import WEB, ContainerSpec, Instance, instance_spec
from agent.deploy.rolloutplan import RolloutPlan
from agent.deploy.runtime import Container, ContainerRuntime
from agent.proxy import Upstream

T = TypeVar("T")


class Scheduler(Protocol):
    """Runs a release's instances somewhere and tells where each answers."""

    async def start(
        self, plan: RolloutPlan, instances: Sequence[Instance], out: DeployOutput,
        started: list[Container],
    ) -> None:
        """Start `instances` of `plan.release`, appending each to `started` as soon as
        it runs: a failure or a cancellation part-way leaves those for the caller to
        remove, and nothing else behind. With `plan.before_start`, all are made first,
        then started once it returns."""
        ...

    def address(self, instance: Container) -> Upstream | None:
        """Where `instance` answers HTTP; None for one that does not (not web)."""
        ...


class LocalScheduler:
    """Every instance a container of this host's engine; web ones on a free host port."""

    def __init__(self, runtime: ContainerRuntime, settings: DeploySettings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._port_lock = asyncio.Lock()

    def address(self, instance: Container) -> Upstream | None:
        return Upstream("127.0.0.1", instance.host_port) if instance.host_port else None

    async def start(
        self, plan: RolloutPlan, instances: Sequence[Instance], out: DeployOutput,
        started: list[Container],
    ) -> None:
        """The port lock is not held while `plan.before_start` runs: a created container
        keeps its port. A container the engine made is never lost, even when the caller
        is cancelled mid-call: it ends in `started`, or it is removed here."""
        if not instances:
            return
        step = f"Starting {', '.join(i.dyno for i in instances)} of {plan.release.version}"
        if plan.before_start is None:
            out.step(step)
        generation = secrets.token_hex(3)
        created: list[tuple[ContainerSpec, str]] = []
        try:
            for instance in instances:
                async with self._port_lock:
                    spec = await self._spec(plan, instance, generation)
                    if plan.before_start is None:
                        await _made(self._runtime.start(spec), started.append)
                    else:
                        await _made(self._runtime.create(spec), partial(_pair, created, spec))
            if plan.before_start is not None:
                await plan.before_start()
                out.step(step)
            while created:
                spec, container_id = created[0]
                await _made(self._runtime.start_created(spec, container_id), started.append)
                created.pop(0)
        finally:
            left = [i for _, i in created if i not in {c.id for c in started}]
            if left:  # never started: a failure or a cancellation on the way
                await asyncio.shield(asyncio.gather(
                    *(self._runtime.remove(i, 0) for i in left), return_exceptions=True))

    async def _spec(self, plan: RolloutPlan, instance: Instance, generation: str) -> ContainerSpec:
        """The container of `instance`; a web one gets a free host port (port lock held)."""
        port = None
        if instance.process == WEB:
            taken = await self._runtime.published_ports()
            port = pick_port(self._settings.port_range_start, self._settings.port_range_end,
                             taken)
        return instance_spec(
            plan.release, instance,
            restart_policy=plan.restart_policy,
            host_port=port,
            container_port=self._settings.container_port,
            log_max_size=self._settings.log_max_size,
            log_max_files=self._settings.log_max_files,
            generation=generation,
            mounts=plan.mounts,
            code=plan.code,
        )


def _pair(into: list[tuple[ContainerSpec, str]], spec: ContainerSpec, made: str) -> None:
    into.append((spec, made))


async def _made(work: Awaitable[T], keep: Callable[[T], None]) -> None:
    """Await `work`, an engine call in a worker thread that cannot be stopped, and pass
    its result to `keep`, even when cancelled meanwhile: the call is waited for, what it
    made is kept (for the caller's cleanup), then the cancellation goes on."""
    task = asyncio.ensure_future(work)
    try:
        keep(await asyncio.shield(task))
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue
        if not task.cancelled() and task.exception() is None:
            keep(task.result())
        raise
