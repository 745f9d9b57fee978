"""Rolling a release's instances onto the engine and the proxy with zero downtime.

The sequence follows kamal-proxy: start the new instances while the old ones serve;
health-check them outside any lock; swap the route atomically; let the proxy drain the
old upstreams; only then stop the old containers. Any failure before the swap removes
what was started and leaves the old instances serving untouched.

Stopping the old containers (SIGTERM, up to deploy.stop_timeout of grace) happens in the
background once they are drained: the roll returns, the app's lock is free, and the next
push does not wait for an old process that is slow to exit. Containers being retired are
invisible to later rolls (`current`), and `settled` waits for them.

The same routine scales (instances that already run and still belong to the formation are
kept) and restarts (every instance is replaced). Where the new instances run is the
scheduler's business (agent.deploy.scheduler); the roll-out only decides which ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol

from agent.config import DeploySettings
from agent.deploy.binding import BindingWatch, exited
from agent.deploy.health import HealthCheckFailed, wait_healthy
from agent.deploy.lastwords import last_words
from agent.deploy.loghistory import LogHistory
from agent.deploy.output import DeployOutput
from agent.deploy.plan import WEB, Instance, instances
from agent.deploy.progress import Progress
from agent.deploy.rolloutplan import RolloutPlan
from agent.deploy.runtime import Container, ContainerRuntime
from agent.deploy.scheduler import LocalScheduler, Scheduler
from agent.errors import BerthError
from agent.proxy import RouteNotFound, RouteOptions, Upstream

log = logging.getLogger(__name__)

HISTORY_LINES = 500  # lines kept of each instance Berth removes (see loghistory)


class Router(Protocol):
    """What a roll-out needs of the proxy."""

    def set_route(
        self, name: str, hosts: Sequence[str], upstreams: Sequence[Upstream],
        options: RouteOptions = ...,
    ) -> None: ...

    async def swap(
        self, name: str, upstreams: Sequence[Upstream], drain_timeout: float
    ) -> object: ...

    async def remove_route(self, name: str, drain_timeout: float) -> None: ...


class InstanceFailed(BerthError):
    """A new non-web instance exited before it settled."""

    def __init__(self, dyno: str, reason: str) -> None:
        super().__init__(f"{dyno} {reason}")
        self.dyno = dyno


class Rollout:
    """Starts, checks, swaps and stops; remembers each app's current upstreams."""

    def __init__(
        self, runtime: ContainerRuntime, router: Router, settings: DeploySettings,
        history: LogHistory | None = None, scheduler: Scheduler | None = None,
    ) -> None:
        self._runtime = runtime
        self._scheduler = scheduler or LocalScheduler(runtime, settings)
        self._history = history
        self._router = router
        self._settings = settings
        self._upstreams: dict[str, tuple[Upstream, ...]] = {}
        # Old containers being stopped: each task, with the app and the container ids.
        self._retirements: dict[asyncio.Task[None], tuple[str, frozenset[str]]] = {}

    async def current(self, app: str) -> list[Container]:
        """The app's process containers, without those being retired."""
        retiring = self.retiring_ids(app)
        return [c for c in await self._runtime.containers(app)
                if c.role == "process" and c.id not in retiring]

    def retiring(self, app: str) -> bool:
        """Whether old containers of `app` are still being stopped."""
        return any(name == app for name, _ in self._retirements.values())

    def retiring_ids(self, app: str) -> frozenset[str]:
        """The ids of `app`'s containers being stopped (drained, out of the route)."""
        return frozenset(i for name, ids in self._retirements.values() if name == app
                         for i in ids)

    async def settled(self, app: str | None = None, timeout: float | None = None) -> None:
        """Wait until the old containers of `app` (or of every app) are gone."""
        tasks = {t for t, (name, _) in self._retirements.items() if app in (None, name)}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def upstreams(self, app: str) -> tuple[Upstream, ...]:
        return self._upstreams.get(app, ())

    def restore_route(self, target: RolloutPlan, web: Sequence[Container]) -> None:
        """Point the route at already running instances (the reconciler, at boot)."""
        upstreams = self._addresses(web)
        self._router.set_route(target.release.app, list(target.hosts), upstreams, target.options)
        self._upstreams[target.release.app] = upstreams

    def refresh_route(self, target: RolloutPlan) -> None:
        """New hosts or options for the current upstreams (domains:add, apps:set)."""
        app = target.release.app
        self._router.set_route(app, list(target.hosts), self.upstreams(app), target.options)

    def forget_history(self, app: str) -> None:
        """The saved logs of the app's removed instances (apps:destroy)."""
        if self._history is not None:
            self._history.forget(app)

    async def remove_route(self, app: str) -> None:
        """The app's route, drained and gone; an app never deployed has none."""
        self._upstreams.pop(app, None)
        try:
            await self._router.remove_route(app, self._settings.drain_timeout)
        except RouteNotFound:
            pass

    async def roll(
        self, target: RolloutPlan, out: DeployOutput, *, replace_all: bool,
        progress: Progress | None = None,
    ) -> None:
        """Make the app run `target`, telling `progress` where it has come (see
        agent.deploy.progress): its gate, when it has one, runs beside the start and
        check of the new instances and must succeed too before the swap (the first of
        them to fail cancels the other); `committing` runs when nothing can fail any
        more short of the swap itself; `swapped` once the old instances are drained,
        before they are stopped.
        """
        progress = progress or Progress()
        app = target.release.app
        current = await self.current(app)
        keep = [] if replace_all else _kept(current, target)
        wanted = instances(target.formation, target.release.processes)
        kept_ids = {c.id for c in keep}
        have = {c.instance for c in keep}
        missing = [i for i in wanted if i not in have]
        retire = [c for c in current if c.id not in kept_ids]

        started: list[Container] = []  # filled as they start: a failure removes them all
        async def start_and_check() -> None:
            await self._scheduler.start(target, missing, out, started)
            await self._check(target, started, out)

        try:
            if progress.gated:
                await _all_or_none(start_and_check(), progress.gate())
            else:
                await start_and_check()
        except BaseException:
            await asyncio.shield(self.remove(started))
            raise
        progress.committing()
        serving = keep + started
        await self._swap(target, serving, out)
        progress.swapped()
        if retire:
            out.detail(f"stopping {_describe(retire)} in the background")
            self._retire(app, retire)

    async def stop_all(self, app: str, out: DeployOutput) -> None:
        """Route to no instance (503), drain, and remove every process container."""
        current = await self.current(app)
        if app in self._upstreams:
            await self._router.swap(app, (), self._settings.drain_timeout)
            self._upstreams[app] = ()
        if current:
            out.step(f"Stopping {_describe(current)}")
            await self.remove(current)
        await self.settled(app)

    def _retire(self, app: str, containers: Sequence[Container]) -> None:
        """Stop and remove drained `containers` without holding up the caller."""
        task = asyncio.get_running_loop().create_task(
            self.remove(containers), name=f"retire-{app}")
        self._retirements[task] = (app, frozenset(c.id for c in containers))
        task.add_done_callback(self._retirements.pop)

    # steps ---------------------------------------------------------------------------

    async def _check(
        self, target: RolloutPlan, started: Sequence[Container], out: DeployOutput
    ) -> None:
        web = [c for c in started if c.instance and c.instance.process == WEB]
        others = [c for c in started if c not in web]
        began = time.monotonic()
        if web:
            host = target.hosts[0] if target.hosts else f"{target.release.app}.localhost"
            out.step(f"Checking {_describe(web)} (Host: {host}, deadline {target.health_timeout:g} s)")
            deadline = time.monotonic() + target.health_timeout
            headers = [("X-Forwarded-Proto", "https")] if target.tls else []
            await asyncio.gather(*(
                self._check_one(c, target, host, headers, deadline, out) for c in web
            ))
        if others:
            settle = self._settings.settle_time - (time.monotonic() - began)
            if settle > 0:
                await asyncio.sleep(settle)
            for container in others:
                problem = await exited(self._runtime, container)
                if problem is not None:
                    tail = await self._runtime.logs_tail(container.id, 20)
                    raise InstanceFailed(_dyno(container),
                                         problem + _tail_text(tail, target.release.config))

    async def _check_one(
        self, container: Container, target: RolloutPlan, host: str,
        headers: Sequence[tuple[str, str]], deadline: float, out: DeployOutput,
    ) -> None:
        assert container.host_port is not None
        dyno = _dyno(container)
        watch = BindingWatch(self._runtime, container, self._settings.container_port)
        try:
            await wait_healthy(
                container.host_port, target.checks, host_header=host, extra_headers=headers,
                deadline=deadline, interval=self._settings.health_interval,
                alive=watch.problem, say=lambda text: out.detail(f"{dyno}: {text}"),
            )
        except HealthCheckFailed as exc:
            tail = await self._runtime.logs_tail(container.id, 20)
            why = watch.explain(target.release.processes.get(WEB, ""))
            raise HealthCheckFailed(
                exc.url, f"{dyno}: {exc.reason}{why}" + _tail_text(tail, target.release.config),
                None) from exc

    async def _swap(self, target: RolloutPlan, serving: Sequence[Container], out: DeployOutput) -> None:
        app = target.release.app
        web = [c for c in serving if c.instance and c.instance.process == WEB]
        upstreams = self._addresses(web)
        previous = self._upstreams.get(app)
        if previous == upstreams:
            self._router.set_route(app, list(target.hosts), upstreams, target.options)
            return
        if previous is None:
            self._router.set_route(app, list(target.hosts), upstreams, target.options)
        else:
            self._router.set_route(app, list(target.hosts), previous, target.options)
            out.step(f"Switching traffic to {target.release.version} and draining the old instances")
            await self._router.swap(app, upstreams, self._settings.drain_timeout)
        self._upstreams[app] = upstreams

    def _addresses(self, web: Sequence[Container]) -> tuple[Upstream, ...]:
        return tuple(a for a in map(self._scheduler.address, web) if a is not None)

    async def remove(self, containers: Sequence[Container]) -> None:
        """Stop and remove `containers` now, each failure logged (never raised)."""
        results = await asyncio.gather(
            *(self._remove_one(c) for c in containers), return_exceptions=True,
        )
        for container, result in zip(containers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("container not removed name=%s error=%s", container.name, result)

    async def _remove_one(self, container: Container) -> None:
        """Stop, keep what the instance last said (its shutdown included), remove."""
        await self._runtime.stop(container.id, self._settings.stop_timeout)
        if self._history is not None and container.role == "process" and container.app:
            lines = [line async for line in self._runtime.logs(
                [container], follow=False, tail=HISTORY_LINES)]
            try:
                await asyncio.to_thread(self._history.save, container.app, lines)
            except OSError as exc:  # a full disk must not keep an old instance around
                log.warning("logs not kept name=%s error=%s", container.name, exc)
        await self._runtime.remove(container.id, 0)


def _kept(current: Sequence[Container], target: RolloutPlan) -> list[Container]:
    """Instances of the target release that run and are still in the formation."""
    wanted = set(instances(target.formation, target.release.processes))
    kept = []
    seen: set[Instance] = set()
    for container in sorted(current, key=lambda c: c.name):
        instance = container.instance
        if (
            container.release == target.release.number
            and container.running
            and instance in wanted
            and instance not in seen
        ):
            kept.append(container)
            seen.add(instance)
    return kept


def _dyno(container: Container) -> str:
    return container.instance.dyno if container.instance else container.name


def _describe(containers: Sequence[Container]) -> str:
    return ", ".join(sorted(_dyno(c) for c in containers))


def _tail_text(lines: Sequence[str], config: Mapping[str, str]) -> str:
    """An instance's last log lines for a failure, config var values hidden (they are
    shown to the pusher and kept in the release's event)."""
    shown = last_words(lines, config, count=20)
    if not shown:
        return ""
    return "\nlast log lines:\n" + "\n".join(shown)


async def _all_or_none(*work: Awaitable[None]) -> None:
    """Run `work` side by side until all succeed. The first failure, one of them being
    cancelled, or a cancellation of the caller cancels the rest, waits for them to end,
    and is raised (a cancellation as CancelledError)."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # the caller cancelled: the work ends with it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    ended_badly = [t for t in done if t.cancelled() or t.exception() is not None]
    if not ended_badly and not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in ended_badly:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    raise asyncio.CancelledError()
