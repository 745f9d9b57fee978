"""The deploy worker: every operation that changes what runs for an app.

Pushes, config changes, rollbacks, restarts, scales, stops and starts, domain changes
and destroys come through `Deployer`, one operation per app at a time (`locks`);
different apps proceed side by side. Each takes one `snapshot` of the app, makes or
reuses a release and hands it to `Rollout`; a failure marks the release failed
(`failures`), removes what it started, and leaves the previous release serving.
A push reads as its steps: build -> release phase -> roll out -> certificates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path

from agent import storage
from agent.build import APP_USER
from agent.config import Config
from agent.deploy import earlystart
from agent.deploy.building import ImageBuilder, build_release
from agent.deploy.certificates import CertificateDesire
from agent.deploy.errors import ImagePruned, NothingToRelease, ReleaseCommandFailed
from agent.deploy.failures import FailureRecorder
from agent.deploy.locks import AppLocks
from agent.deploy.oneoff import OneOffs
from agent.deploy.output import DeployOutput, announce_live
from agent.deploy.plan import check_known, formation_text, release_phase_spec
from agent.deploy.progress import Progress
from agent.deploy.pruning import ImagePruner
from agent.deploy.pushbase import BranchGuard, PushBase
from agent.deploy.pushed import PushedTree, complete_formation
from agent.deploy.rollback import rollback_source
from agent.deploy.rollout import Rollout
from agent.deploy.rolloutplan import RolloutPlan
from agent.deploy.runtime import ContainerRuntime, Terminal
from agent.deploy.snapshot import AppViews, Snapshot
from agent.releases import Release, ReleaseState
from agent.services.configvars import ConfigChange
from agent.store.apps import App, AppStore
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore

log = logging.getLogger(__name__)


class Deployer:
    def __init__(
        self,
        config: Config,
        apps: AppStore,
        releases: ReleaseStore,
        events: EventStore,
        runtime: ContainerRuntime,
        builder: ImageBuilder,
        rollout: Rollout,
        *,
        certificates: CertificateDesire | None = None,
        tls_hosts: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._config = config
        self._apps = apps
        self._releases = releases
        self._events = events
        self._runtime = runtime
        self._builder = builder
        self._rollout = rollout
        self._certificates = certificates
        self._failures = FailureRecorder(releases, events)
        self._tls_hosts = tls_hosts
        self._views = AppViews(config, apps, tls_hosts)
        self.one_offs = OneOffs(config.deploy, apps, releases, events, runtime,
                                 self._views.mounts)
        self._pruner = ImagePruner(runtime, releases, rollout, config.deploy.keep_releases)
        self._locks = AppLocks()
        self._branches = BranchGuard()
        self._app_user_ids = earlystart.AppUserIds(APP_USER)
        self._bases = earlystart.KnownBases()

    # the per-app lock ------------------------------------------------------------------

    def app_lock(self, app: str, out: DeployOutput) -> AbstractAsyncContextManager[None]:
        """Hold `app` for one operation (agent.deploy.locks)."""
        return self._locks.hold(app, out)

    def busy(self, app: str) -> bool:
        """An operation holds the app, or its old containers are still being stopped."""
        return self._locks.held(app) or self._rollout.retiring(app)

    def stopping(self, app: str) -> frozenset[str]:
        return self._rollout.retiring_ids(app)  # old ones being stopped (`berth ps`)

    async def settled(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the work a deploy leaves behind: old containers
        still being stopped, then old images being pruned (at shutdown, in tests)."""
        deadline = time.monotonic() + timeout
        await self._rollout.settled(timeout=timeout)
        await self._pruner.settled(deadline - time.monotonic())

    # what an app should look like --------------------------------------------------------

    def hosts(self, app: str) -> list[str]:
        return self._views.hosts(app)  # its default domain first, then its own

    def target(
        self, app: App, release: Release, formation: Mapping[str, int] | None = None
    ) -> RolloutPlan:
        """Where `release` of `app` should end up (the reconciler, at boot)."""
        return self._views.plan(self._views.of(app), release, formation)

    # operations ------------------------------------------------------------------------

    async def deploy_push(
        self, app_name: str, git_sha: str, source: Path, out: DeployOutput,
        *, committed: Callable[[], None] = lambda: None, description: str = "Deploy",
        base: PushBase | None = None,
    ) -> Release:
        """Build `source` (the pushed tree, or the live commit's for ps:rebuild) and
        make it the live release; a push whose `base` moved is refused before building
        (agent.deploy.pushbase)."""
        async with self.app_lock(app_name, out):
            app = self._views.take(app_name)
            if base is not None:
                await self._branches.check(app_name, base)
            release = self._releases.create(Release(
                app=app_name, number=0, state=ReleaseState.PENDING,
                description=f"{description} {git_sha[:7]}", created_at=time.time(),
                git_sha=git_sha,
                config=self._apps.config(app_name),
            ))
            live = await self._failures.guard(release, out, self._push(
                app, release, source, out, Progress(committed=committed)))
            if base is not None:
                self._branches.deployed(app_name, base, git_sha)
            return live

    async def release_config(
        self, app_name: str, change: ConfigChange, out: DeployOutput
    ) -> Release | None:
        """Apply `change` to the config as it is once the app's lock is held (a change
        made meanwhile is kept), make a release with it (zero downtime) and store the
        change once that release is live; an app not deployed yet just stores it. A failed
        release changes nothing."""
        async with self.app_lock(app_name, out):
            app = self._views.take(app_name)
            live = self._releases.live(app_name)
            description = change.describe()
            config = change.applied_to(self._apps.config(app_name), app_name)

            def store() -> None:
                self._apps.change_config(app_name, change, strict=False)
                self._events.record(app_name, "ConfigChanged", description)

            if live is None:
                store()
                return None
            return await self._rerelease(app, live, config, description, out, on_live=store)

    async def rollback(self, app_name: str, number: int | None, out: DeployOutput) -> Release:
        """A new release with the image and config of release `number` (default: the
        one before the live one); the app's current config is replaced by it."""
        async with self.app_lock(app_name, out):
            app, live = self._live(app_name)
            source = rollback_source(self._releases, app_name, live, number)
            if not await self._runtime.image_exists(source.image):
                raise ImagePruned(source.version, self._config.deploy.keep_releases)
            return await self._rerelease(
                app, source, dict(source.config), f"Rollback to {source.version}", out,
                on_live=lambda: self._apps.replace_config(app_name, source.config),
            )

    async def run_one_off(self, app_name: str, command: str, out: DeployOutput) -> int:
        return await self.one_offs.run(app_name, command, out.raw)  # agent.deploy.oneoff

    async def run_attached(
        self, app_name: str, command: str, size: tuple[int, int], terminal: Terminal
    ) -> int:
        return await self.one_offs.attach(app_name, command, size, terminal)

    async def restart(self, app_name: str, out: DeployOutput) -> None:
        """Replace every instance of the live release, zero downtime."""
        async with self.app_lock(app_name, out):
            app, live = self._live(app_name)
            await self._rollout.roll(self._views.plan(app, live), out, replace_all=True)
            self._events.record(app_name, "AppRestarted", f"restarted {live.version}")

    async def scale(self, app_name: str, changes: Mapping[str, int], out: DeployOutput) -> dict[str, int]:
        async with self.app_lock(app_name, out):
            app = self._views.take(app_name)
            live = self._releases.live(app_name)
            check_known(app_name, changes, set(live.processes) if live else set(app.app.formation))
            formation = {**app.app.formation, **changes}
            if live is not None and not app.app.stopped:
                await self._rollout.roll(self._views.plan(app, live, formation), out,
                                         replace_all=False)
            self._apps.save_formation(app_name, formation)
            self._events.record(app_name, "AppScaled", formation_text(changes))
            return formation

    async def stop(self, app_name: str, out: DeployOutput) -> None:
        async with self.app_lock(app_name, out):
            await self.stop_holding(app_name, out)

    async def stop_holding(self, app_name: str, out: DeployOutput) -> None:
        """`stop`, for a caller holding the app's lock across steps (a restore)."""
        self._apps.get(app_name)
        await self._rollout.stop_all(app_name, out)
        self._apps.set_stopped(app_name, True)
        self._events.record(app_name, "AppStopped", "stopped")

    async def start(self, app_name: str, out: DeployOutput) -> None:
        async with self.app_lock(app_name, out):
            await self.start_holding(app_name, out)

    async def start_holding(self, app_name: str, out: DeployOutput) -> None:
        """`start`, for a caller holding the app's lock across steps (a restore)."""
        app, live = self._live(app_name)
        self._apps.set_stopped(app_name, False)
        await self._rollout.roll(self._views.plan(app, live), out, replace_all=False)
        self._events.record(app_name, "AppStarted", "started")

    async def refresh_routing(self, app_name: str) -> None:
        """Hosts or route options changed (domains, apps:set): update proxy and certs."""
        out = DeployOutput()
        async with self.app_lock(app_name, out):
            app = self._views.take(app_name)
            live = self._releases.live(app_name)
            if live is not None:
                self._rollout.refresh_route(self._views.plan(app, live))
            self._desire_certificates(app)

    async def destroy(self, app_name: str, out: DeployOutput) -> None:
        """Containers, images, route, certificates wish and state: all gone."""
        async with self.app_lock(app_name, out):
            self._apps.get(app_name)
            tags = self._releases.image_tags(app_name)
            kept = [storage.host_dir(self._config.paths.storage, app_name, path)
                    for path in self._apps.mounts(app_name)]
            await self._rollout.stop_all(app_name, out)  # waits for retiring ones too
            await self._rollout.remove_route(app_name)
            for container in await self._runtime.containers(app_name):
                await self._runtime.remove(container.id, 0)
            await self._pruner.remove_all(app_name, tags)
            await self._runtime.remove_network(app_name)
            if self._certificates is not None:
                self._certificates.forget_app(app_name)
            self._rollout.forget_history(app_name)
            self._bases.take(app_name)  # a new app of that name predicts nothing
            self._branches.forget(app_name)
            self._apps.delete(app_name)
            self._events.forget(app_name)
            if kept:  # data outlives the app, as with Dokku: never deleted silently
                out.heading(f"Persistent storage kept in {kept[0].parent}: delete it by "
                            "hand once you no longer need it")
        self._locks.forget(app_name)

    # steps -----------------------------------------------------------------------------

    async def _push(
        self, app: Snapshot, release: Release, source: Path, out: DeployOutput,
        progress: Progress,
    ) -> Release:
        """A push, step by step: read the tree -> build -> release phase -> roll out ->
        certificates (and pruning); an early start rolls out while the build finishes."""
        pushed = await asyncio.to_thread(PushedTree.read, source)
        live = await self._build_and_release(app, release, source, pushed, out, progress)
        self._after_release(app)
        return live

    async def _build_and_release(
        self, app: Snapshot, release: Release, source: Path, pushed: PushedTree,
        out: DeployOutput, progress: Progress,
    ) -> Release:
        """Build, then release; or start the instances early (agent.deploy.earlystart)."""
        early = self._early_start(app, release, source, pushed, out, progress)
        build = asyncio.ensure_future(build_release(
            self._builder, self._releases, app.app, release, source, pushed, out,
            listener=early))
        try:
            if early is not None and (live := await early.run(build)) is not None:
                return live
            built, formation = await build
            return await self._release(app, built, out, formation=formation, progress=progress)
        finally:
            if not build.done():  # failed or cancelled meanwhile: the build stops too
                build.cancel()
                await asyncio.wait({build})

    def _early_start(
        self, app: Snapshot, release: Release, source: Path, pushed: PushedTree,
        out: DeployOutput, progress: Progress,
    ) -> earlystart.EarlyStart | None:
        """The push's early start, when the app allows one (deploy.early_start)."""
        if not (self._config.deploy.early_start
                and earlystart.allowed(pushed.procfile.release, app.mounts)):
            return None

        def go_live(final: Release, formation: Mapping[str, int]) -> Release:
            if app.app.stopped:
                self._apps.set_stopped(app.name, False)
            return self._go_live(app, final, formation, out)

        push = earlystart.Push(
            app=app.app, release=release, source=source, pushed=pushed, out=out,
            progress=progress, target=lambda r, f: self._views.plan(app, r, f),
            go_live=go_live,
        )
        return earlystart.EarlyStart(self._runtime, self._rollout, self._releases,
                                     self._app_user_ids, push, self._bases)

    async def _rerelease(
        self, app: Snapshot, source: Release, config: dict[str, str], description: str,
        out: DeployOutput, *, on_live: Callable[[], None],
    ) -> Release:
        """A new release of `source`'s image with `config`; `on_live` runs as it goes live
        (before the caller is told), so stored state changes only with a live release."""
        release = self._releases.create(replace(
            source, description=description, created_at=time.time(), config=config,
        ))

        async def release_and_settle() -> Release:
            live = await self._release(app, release, out, formation=None, on_live=on_live)
            self._after_release(app)
            return live

        return await self._failures.guard(release, out, release_and_settle())

    async def _release(
        self, app: Snapshot, release: Release, out: DeployOutput, *,
        formation: Mapping[str, int] | None, progress: Progress | None = None,
        on_live: Callable[[], None] = lambda: None,
    ) -> Release:
        """Release phase -> roll out; the release goes live with the swap."""
        release = self._releases.move(release, ReleaseState.RELEASING)
        if release.release_command:
            await self._release_phase(app, release, out)
        release = self._releases.move(release, ReleaseState.STARTING)
        formation = complete_formation(app.app.formation if formation is None else formation,
                                       release.processes)
        if app.app.stopped:
            self._apps.set_stopped(app.name, False)
        rolled = Progress(
            committed=progress.committing if progress else lambda: None,
            went_live=lambda: self._go_live(app, release, formation, out, on_live),
        )
        await self._rollout.roll(self._views.plan(app, release, formation), out,
                                 replace_all=True, progress=rolled)
        return rolled.released()

    def _go_live(
        self, app: Snapshot, release: Release, formation: Mapping[str, int], out: DeployOutput,
        on_live: Callable[[], None] = lambda: None,
    ) -> Release:
        """The swap is done: record it, tell the pusher, settle the push."""
        live = self._releases.go_live(release)
        on_live()
        self._apps.save_formation(app.name, formation)
        self._events.record(app.name, "ReleaseDeployed", f"{live.version}: {live.description}")
        announce_live(out, app.name, live, formation, app.hosts, self._tls_hosts(),
                      self._certificates)
        out.settle({"release": live.number})
        return live

    def _after_release(self, app: Snapshot) -> None:
        self._pruner.after_release(app.name)
        self._desire_certificates(app)

    async def _release_phase(self, app: Snapshot, release: Release, out: DeployOutput) -> None:
        out.step(f"Running release command: {release.release_command}")
        spec = release_phase_spec(release, container_port=self._config.deploy.container_port,
                                  mounts=app.mounts)
        code = await self._runtime.run_once(spec, self._config.deploy.release_timeout, out.detail)
        if code != 0:
            raise ReleaseCommandFailed(release.release_command, code)

    def _desire_certificates(self, app: Snapshot) -> None:
        if self._certificates is not None:
            self._certificates.set_app_domains(app.name, list(app.hosts), acme=app.app.settings.acme)

    def _live(self, app_name: str) -> tuple[Snapshot, Release]:
        app = self._views.take(app_name)
        live = self._releases.live(app_name)
        if live is None:
            raise NothingToRelease(app_name)
        return app, live

