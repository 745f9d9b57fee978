"""Making the running world match the database: at boot, then periodically.

At boot: releases left unfinished by a dead agent are marked failed; containers of those
releases, of one-off release phases and of apps that no longer exist are removed; each
app's live release gets its running instances adopted, its route restored, and missing
instances started. As the engine reports deaths (`follow`): a live instance that died
and that its restart policy did not bring back (`docker kill`, an exit under policy `no`)
is replaced at once, and the app's events say what happened (an instance killed for
exceeding its memory says so, with the limit: the engine's OOM flag or the kernel's
log of the kill, agent.deploy.oomwatch); a process killed for memory in an instance that
lives on (a worker its master replaces) is recorded too (`noticed_oom`). Periodically, as the safety net: an instance that
vanished or died for good is replaced. An app with an operation in progress is left to
that operation.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.deploy.deathcause import death_cause, process_killed
from agent.deploy.events import ContainerDied
from agent.deploy.lastwords import LINES, last_words, with_last_words
from agent.deploy.oomlog import OomKill, OomKills
from agent.deploy.orchestrator import Deployer
from agent.deploy.output import DeployOutput
from agent.deploy.plan import WEB, instances
from agent.deploy.rollout import Rollout
from agent.deploy.runtime import Container, ContainerRuntime
from agent.errors import BerthError
from agent.releases import ReleaseState
from agent.store.apps import AppStore
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the agent stopped during this deploy"
OOM_WINDOW = 60.0  # seconds before a death in which the kernel's OOM kills explain it
OOM_SETTLE = 2.0  # seconds after a kill in which its container's death would be reported
TAIL_TIMEOUT = 10.0  # seconds to read a dead instance's last lines from the engine


class Reconciler:
    def __init__(
        self, apps: AppStore, releases: ReleaseStore, runtime: ContainerRuntime,
        rollout: Rollout, deployer: Deployer, events: EventStore | None = None,
        builds: Path | None = None, oom: OomKills | None = None,
    ) -> None:
        self._apps = apps
        self._releases = releases
        self._runtime = runtime
        self._rollout = rollout
        self._deployer = deployer
        self._events = events  # where skipped apps and dead instances are recorded
        self._builds = builds
        self._oom = oom
        self._watching: set[asyncio.Task[None]] = set()
        self._died: dict[str, float] = {}  # container id -> when its last death was seen

    async def boot(self) -> None:
        for release in self._releases.unfinished():
            log.warning("marking interrupted release failed app=%s release=%s",
                        release.app, release.number)
            self._releases.move(release, ReleaseState.FAILED, error=INTERRUPTED)
        containers = await self._runtime.containers()
        await self._remove_strays(containers)
        await self._remove_killed_builds()
        for app in self._apps.names():
            try:
                await self.reconcile_app(app, adopt=True)
            except BerthError as exc:
                self._skipped(app, exc)

    async def _remove_killed_builds(self) -> None:
        """Work directories and images of pushes killed mid-build (at boot no build
        runs, so every work directory is a dead one's)."""
        if self._builds is not None and self._builds.is_dir():
            for leftover in sorted(self._builds.iterdir()):
                log.info("removing a killed push's work directory path=%s", leftover)
                await asyncio.to_thread(_remove_path, leftover)
        for app in self._apps.names():
            try:
                await self._runtime.remove_build_leftovers(app)
            except BerthError as exc:
                log.warning("build leftovers not removed app=%s error=%s", app, exc)

    async def _remove_strays(self, containers: list[Container]) -> None:
        known = set(self._apps.names())
        live = self._live_numbers(known)
        for container in containers:
            if container.app in known and container.app not in live:
                continue  # its live release is unreadable: its containers are left be
            stray = (
                container.app not in known
                or container.role != "process"
                or container.release != live.get(container.app)
            )
            if not stray:
                continue
            log.info("removing leftover container name=%s", container.name)
            if container.app in known:
                await self._rollout.remove([container])  # its last lines are kept
            else:  # an app destroyed while the agent was down: nothing to keep
                await self._runtime.remove(container.id, 5)

    def _live_numbers(self, apps: set[str]) -> dict[str, int | None]:
        """Each app's live release number (None: none); an app whose live release
        cannot be read is left out."""
        live: dict[str, int | None] = {}
        for app in apps:
            try:
                release = self._releases.live(app)
            except BerthError as exc:
                self._skipped(app, exc)
                continue
            live[app] = release.number if release else None
        return live

    def _skipped(self, app: str, exc: BerthError) -> None:
        log.error("reconcile failed app=%s error=%s", app, exc)
        if self._events is not None:
            self._events.record(app, "SkippedAtStart",
                                f"not restored at start: {str(exc).splitlines()[0]}")

    async def reconcile_app(self, app_name: str, *, adopt: bool = False) -> bool:
        """Bring one app to its live release's formation (no-op when it already is);
        whether anything had to change."""
        out = DeployOutput()
        async with self._deployer.app_lock(app_name, out):
            app = self._apps.get(app_name)
            live = self._releases.live(app_name)
            if live is None:
                return False
            target = self._deployer.target(app, live)
            if app.stopped:
                target = replace(target, formation={})
            current = await self._rollout.current(app_name)
            running = [c for c in current if c.running and c.release == live.number]
            if adopt:
                web = [c for c in running if c.instance and c.instance.process == WEB]
                self._rollout.restore_route(target, web)
            wanted = set(instances(target.formation, live.processes))
            have = {c.instance for c in running}
            extra = [c for c in current if c not in running or c.instance not in wanted]
            # Two of one instance (an agent that died between a restart's swap and the
            # old container's stop): the roll keeps one and retires the other.
            doubled = len(running) > len(have)
            if wanted <= have and not extra and not doubled:
                return False
            log.info("reconciling app=%s missing=%s extra=%d", app_name,
                     sorted(i.dyno for i in wanted - have), len(extra))
            await self._rollout.roll(target, out, replace_all=False)
            return True

    async def run_periodically(self, interval: float) -> None:
        """The reconciler task: never returns; one app's trouble does not stop others."""
        while True:
            await asyncio.sleep(interval)
            for app in self._apps.names():
                if self._deployer.busy(app):
                    continue
                try:
                    await self.reconcile_app(app)
                except BerthError as exc:
                    log.warning("reconcile failed app=%s error=%s", app, exc)

    async def follow(self, deaths: AsyncIterator[ContainerDied], settle: float = 0.5) -> None:
        """The engine-events task: each death of a live instance is looked at `settle`
        seconds later (the restart policy's chance). Deaths during an operation on the
        app (a deploy or restart stopping old instances) are that operation's."""
        async for death in deaths:
            self._forget_old_deaths()
            self._died[death.container_id] = time.monotonic()
            if death.role != "process" or self._deployer.busy(death.app):
                continue
            self._watch(self._after_death(death, settle))

    def noticed_oom(self, kill: OomKill, settle: float = OOM_SETTLE) -> None:
        """The kernel killed a process of a container for memory (agent.deploy.oomwatch
        calls this as it reads the kill): recorded on the app unless the container died
        of it, which its death's event says."""
        self._watch(self._after_oom_kill(kill, time.monotonic(), settle))

    def _watch(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    def _forget_old_deaths(self) -> None:
        horizon = time.monotonic() - OOM_WINDOW
        self._died = {cid: at for cid, at in self._died.items() if at > horizon}

    async def _after_oom_kill(self, kill: OomKill, seen: float, settle: float) -> None:
        await asyncio.sleep(settle)
        self._forget_old_deaths()
        if self._died.get(kill.container_id, 0.0) >= seen - settle:
            return  # it died of it
        try:
            container = await self._runtime.get(kill.container_id)
        except BerthError as exc:
            log.warning("an OOM-killed process's container unknown error=%s", exc)
            return
        if (container is None or not container.running or container.role != "process"
                or container.instance is None or container.app not in self._apps.names()):
            return
        limit = container.memory_limit if kill.at_limit else None
        self._record(container.app, "ProcessKilled",
                     process_killed(container.instance.dyno, kill.task, limit))

    async def _after_death(self, death: ContainerDied, settle: float) -> None:
        await asyncio.sleep(settle)
        app = death.app
        live = self._releases.live(app) if app in self._apps.names() else None
        if live is None or live.number != death.release:
            return
        try:
            container = await self._runtime.get(death.container_id)
            why = self._cause(death, container)
            said = await self._last_words(death.container_id, live.config)
            if container is not None and container.state in ("running", "restarting"):
                self._record(app, "InstanceRestarted", with_last_words(
                    f"{death.dyno} {why}; restarted by its restart policy", said))
                return
            if await self.reconcile_app(app):
                self._record(app, "InstanceReplaced",
                             with_last_words(f"{death.dyno} {why}; replaced", said))
        except BerthError as exc:
            log.warning("replacing a dead instance failed app=%s dyno=%s error=%s",
                        app, death.dyno, exc)

    async def _last_words(self, container_id: str, config: Mapping[str, str]) -> list[str]:
        """The dead instance's last log lines, redacted (none if the engine is slow)."""
        try:
            tail = await asyncio.wait_for(
                self._runtime.logs_tail(container_id, LINES * 2), TAIL_TIMEOUT)
        except (TimeoutError, BerthError) as exc:
            log.warning("a dead instance's last lines unread container=%s error=%s",
                        container_id[:12], exc or "timeout")
            return []
        return last_words(tail, config)

    def _cause(self, death: ContainerDied, container: Container | None) -> str:
        """Why an instance died, in words."""
        kills = [] if self._oom is None else self._oom.kills(
            death.container_id, since=death.time - OOM_WINDOW)
        flagged = death.oom or (container is not None and container.oom_killed)
        at_limit = flagged or any(kill.at_limit for kill in kills)
        limit = container.memory_limit if container is not None and at_limit else None
        return death_cause(death.exit_code, flagged, len(kills), limit)

    def _record(self, app: str, kind: str, message: str) -> None:
        log.info("%s app=%s %s", kind, app, message)
        if self._events is not None:
            self._events.record(app, kind, message)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
