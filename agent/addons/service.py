"""Add-ons' lifecycle: create, restart, destroy, show, and bring back after a crash.

A new add-on is a row, a directory data_dir/addons/APP/NAME/ (root's only), a container
on the app's network, and its URL in the app's config, set through the deploy's own
config path so a new release rolls out with zero downtime (and its release phase sees
the URL). Creating is all or nothing: a container that never answers, or a release that
fails, removes what was made. The password and URL are never written to the output,
events or the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from agent.addons import containers, persistence, tls
from agent.addons.carryover import AofCarryOver
from agent.addons.containers import AddonLayout
from agent.addons.engine import AddonEngine
from agent.addons.model import (
    Addon,
    InvalidAddon,
    check_host_name,
    check_kind,
    check_version,
    choose_names,
    new_password,
)
from agent.addons.settings import AddonSettings
from agent.addons.store import AddonStore
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.services.configvars import ConfigChange
from agent.store.apps import AppStore
from agent.store.events import EventStore

log = logging.getLogger(__name__)

_PROBE_INTERVAL = 0.25


class AddonFailed(BerthError):
    status = 502


class ConfigOwner(Protocol):
    """The app's config vars' one owner (agent.services.config.ConfigVars): a change
    made through a release of a deployed app, stored alone otherwise."""

    async def change(self, app: str, change: ConfigChange, out: DeployOutput, *,
                     restart: bool = True) -> Any: ...


class AddonService:
    def __init__(self, *, settings: AddonSettings, data_dir: Path, restart_policy: str,
                 store: AddonStore, engine: AddonEngine, apps: AppStore, events: EventStore,
                 config: ConfigOwner) -> None:
        self.settings = settings
        self.root = data_dir / "addons"
        self.backups_root = data_dir / "backups"
        self._restart_policy = restart_policy
        self.store = store
        self.engine = engine
        self._apps = apps
        self._events = events
        self._config = config
        self._paused: set[str] = set()  # containers the reconciler leaves alone
        # Held by the reconciler while it acts on one container: whoever pauses one
        # then waits for an action begun before the pause (see `quiet`).
        self._acting = asyncio.Lock()
        self._aof = AofCarryOver(self._switch_to_aof)  # its switches run outside `_acting`

    def layout(self, addon: Addon) -> AddonLayout:
        return AddonLayout.of(self.root, addon)

    # create ----------------------------------------------------------------------------

    def plan(self, app: str, kind: str, version: str | None, alias: str | None) -> Addon:
        """The add-on `addons:create` would make; bad input is refused here, at once."""
        self._apps.get(app)
        check_kind(kind)
        version = check_version(version or self.settings.default_version(kind))
        taken = {a.name: a.variable for a in self.store.of_app(app)}
        name, variable = choose_names(kind, taken, alias)
        check_host_name(app, name)
        if variable in self._apps.config(app):
            raise InvalidAddon(f"{app} already has a config var {variable}: name the add-on "
                               "with --as NAME to set NAME_URL instead")
        return Addon(app=app, name=name, kind=kind, version=version,
                     image=self.settings.image(kind, version), variable=variable,
                     password=new_password(), created_at=time.time())

    async def create(self, app: str, kind: str, version: str | None, alias: str | None,
                     out: DeployOutput) -> Addon:
        return await self.start_new(self.plan(app, kind, version, alias), out)

    async def start_new(self, addon: Addon, out: DeployOutput) -> Addon:
        """Store, start, wait for it to answer, then set its variable through a release."""
        app, name, kind, version, variable = (addon.app, addon.name, addon.kind,
                                              addon.version, addon.variable)
        async with self.quiet(addon):
            self.store.add(addon)
            try:
                out.step(f"Starting {kind} {version} as {name} ({addon.image})")
                await self._start_container(addon)
                out.step(f"Waiting for {name} to answer")
                await self.wait_ready(addon)
                await self._config.change(app, ConfigChange(set={variable: addon.url}),
                                          out.nested())
            except BaseException:
                await self._discard(addon)
                raise
        self._events.record(app, "AddonCreated", f"{name}: {kind} {version}, sets {variable}")
        out.heading(f"{name} is ready; {app} has {variable}")
        return addon

    async def _start_container(self, addon: Addon, layout: AddonLayout | None = None,
                               restart_policy: str | None = None) -> None:
        layout = layout or self.layout(addon)
        self._prepare(addon, layout)
        backups = self.backups_root / addon.app
        backups.mkdir(parents=True, exist_ok=True)
        backups.chmod(0o700)
        network = await self.engine.ensure_network(addon.app)
        await self.engine.run(containers.container_for(
            addon, layout, backups, network, self.engine.installation,
            restart_policy or self._restart_policy))

    def _prepare(self, addon: Addon, layout: AddonLayout) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        layout.data.mkdir(parents=True, exist_ok=True)
        if addon.kind == "postgres":
            tls.ensure_certificate(layout.tls, addon.container)
        else:
            persistence.write_conf(addon, layout, persistence.starts_with_aof(layout.data))

    async def wait_ready(self, addon: Addon) -> None:
        argv, env = containers.ready_probe(addon)
        deadline = time.monotonic() + self.settings.start_timeout
        while True:
            state = await self.engine.state(addon.container)
            # "restarting": it exited and its restart policy brings it back, to fail the
            # same way again (a file it cannot load): no use waiting out the deadline.
            if state in ("exited", "dead", "restarting", None):
                raise AddonFailed(f"{addon.name} of {addon.app} exited while starting "
                                  f"(docker logs {addon.container})")
            if state == "running":
                remaining = max(1.0, deadline - time.monotonic())
                result = await self.engine.exec(
                    addon.container, argv, env=env,
                    timeout=min(self.settings.command_timeout, remaining))
                if result.status == 0 and (addon.kind == "postgres"
                                           or result.stdout.strip() == b"PONG"):
                    return
            if time.monotonic() > deadline:
                raise AddonFailed(f"{addon.name} of {addon.app} did not answer within "
                                  f"{self.settings.start_timeout:g} s")
            await asyncio.sleep(_PROBE_INTERVAL)

    async def _discard(self, addon: Addon) -> None:
        """Undo a create: container, files, row (shielded: runs to its end)."""
        async def discard() -> None:
            try:
                await self.engine.remove(addon.container)
            finally:
                await asyncio.to_thread(shutil.rmtree, self.layout(addon).root, True)
                self.store.remove(addon.app, addon.name)
        await asyncio.shield(discard())

    async def recreate_empty(self, addon: Addon) -> None:
        """A stored add-on's container started again on an empty data directory (a
        whole-server restore, which then restores its dump into it)."""
        await self.engine.remove(addon.container)
        await asyncio.to_thread(shutil.rmtree, self.layout(addon).root, True)
        await self._start_container(addon)
        await self.wait_ready(addon)

    @contextmanager
    def paused(self, addon: Addon) -> Iterator[None]:
        """While a restore or verification works on it, the reconciler leaves the
        add-on's container alone (stopped on purpose, or not stored)."""
        self._paused.add(addon.container)
        try:
            yield
        finally:
            self._paused.discard(addon.container)

    @asynccontextmanager
    async def quiet(self, addon: Addon) -> AsyncIterator[None]:
        """Paused, and once the reconciler's action in flight (if any) has ended: it can
        no longer start, recreate or remove this add-on's container meanwhile, nor is
        its switch to the AOF still running."""
        with self.paused(addon):
            async with self._acting:
                pass
            await self._aof.settled(addon.container)
            yield

    @asynccontextmanager
    async def scratch_copy(self, addon: Addon, scratch: Path) -> AsyncIterator[Addon]:
        """A throwaway, empty add-on like `addon` with its files in `scratch`, removed
        afterwards (verifying a backup)."""
        copy = replace(addon, name=f"verify-{secrets.token_hex(4)}", password=new_password())
        with self.paused(copy):
            try:
                await self._start_container(copy, AddonLayout(scratch), "no")
                await self.wait_ready(copy)
                yield copy
            finally:
                await asyncio.shield(self.engine.remove(copy.container))

    # restart and destroy ---------------------------------------------------------------

    async def restart(self, app: str, name: str, out: DeployOutput) -> None:
        addon = self.store.get(app, name)
        out.step(f"Restarting {name}")
        await self.engine.stop(addon.container, self.settings.stop_timeout)
        if await self.engine.state(addon.container) is None:
            await self._start_container(addon)
        else:
            await self.engine.start(addon.container)
        await self.wait_ready(addon)
        self._events.record(app, "AddonRestarted", name)
        out.heading(f"{name} is running")

    async def destroy(self, app: str, name: str, out: DeployOutput) -> None:
        """Unset its variable (a release), then remove the container and its data."""
        addon = self.store.get(app, name)
        if self._apps.exists(app) and self._apps.config(app).get(addon.variable) == addon.url:
            await self._config.change(app, ConfigChange(unset=(addon.variable,)), out.nested())
        await self.remove(addon, out)

    async def remove(self, addon: Addon, out: DeployOutput) -> None:
        """Container, data and row (its variable left as it is: the app's destroy)."""
        out.step(f"Removing {addon.name} and its data")
        async with self.quiet(addon):
            await self.engine.stop(addon.container, self.settings.stop_timeout)
            await self.engine.remove(addon.container)
            await asyncio.to_thread(shutil.rmtree, self.layout(addon).root, True)
            self.store.remove(addon.app, addon.name)
        self._events.record(addon.app, "AddonDestroyed", addon.name)
        out.heading(f"{addon.name} destroyed")

    # show ------------------------------------------------------------------------------

    async def describe(self, addon: Addon) -> dict[str, Any]:
        state = await self.engine.state(addon.container)
        size = await asyncio.to_thread(_size, self.layout(addon).data)
        return {**addon.public(), "state": state or "missing", "size": size,
                "data": str(self.layout(addon).data)}

    # after a crash ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Start stored add-ons that are stopped or missing; remove containers of add-ons
        that are no longer stored. One add-on's failure never stops the others."""
        wanted = {a.container: a for a in self.store.all()
                  if a.container not in self._paused}
        for container, app, name in await self.engine.names():
            if container not in wanted:
                await self._remove_unstored(container, app, name)
        for addon in wanted.values():
            try:
                await self._bring_back(addon)
            except BerthError as exc:
                log.error("add-on not brought back app=%s addon=%s error=%s",
                          addon.app, addon.name, exc)

    async def run_periodically(self, interval: float) -> None:
        """The safety net beside each container's restart policy (a task of the agent)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except BerthError as exc:
                log.error("add-on reconcile failed error=%s", exc)

    def _left_alone(self, container: str, app: str, name: str, stored: bool) -> bool:
        """Paused, or no longer as the reconciler's snapshot saw it (each action checks
        again, holding `_acting`, since a create or destroy may have run meanwhile)."""
        return (container in self._paused
                or any(a.name == name for a in self.store.of_app(app)) != stored)

    async def _remove_unstored(self, container: str, app: str, name: str) -> None:
        async with self._acting:
            if self._left_alone(container, app, name, stored=False):
                return
            log.info("removing add-on container no longer stored container=%s", container)
            await self.engine.remove(container)

    async def _bring_back(self, addon: Addon) -> None:
        """Started when down; a running redis whose data is still RDB only (made before
        AOF was on, or a restore's switch that failed) gets its AOF in the background,
        begun while `_acting` is held so that a `quiet()` after it waits for it."""
        async with self._acting:
            if (not self._left_alone(addon.container, addon.app, addon.name, stored=True)
                    and await self._restart_if_down(addon) and addon.kind == "redis"
                    and persistence.rdb_only(self.layout(addon))):
                self._aof.start(addon)

    async def _switch_to_aof(self, addon: Addon) -> None:
        log.info("turning on the AOF app=%s addon=%s", addon.app, addon.name)
        await persistence.switch_on(self.engine, addon, self.layout(addon),
                                    timeout=self.settings.capture_timeout,
                                    probe_timeout=self.settings.command_timeout)
        self._events.record(addon.app, "AddonAofOn", f"{addon.name}: append-only file on")

    async def _restart_if_down(self, addon: Addon) -> bool:
        """Recreated or started when down; whether it was running already."""
        state = await self.engine.state(addon.container)
        if state is None:
            log.info("recreating missing add-on app=%s addon=%s", addon.app, addon.name)
            await self._start_container(addon)
            self._events.record(addon.app, "AddonRecreated", f"{addon.name}: its container was gone")
        elif state in ("exited", "created", "dead"):
            log.info("starting stopped add-on app=%s addon=%s", addon.app, addon.name)
            await self.engine.start(addon.container)
        return state == "running"


def _size(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
