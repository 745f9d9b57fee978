"""Changing an app's config vars: stored at once (--no-restart) or through a release."""

from __future__ import annotations

from typing import Protocol

from agent.deploy.output import DeployOutput
from agent.releases import Release
from agent.services.configvars import ConfigChange
from agent.store.apps import AppStore
from agent.store.events import EventStore


class ConfigReleaser(Protocol):
    """What a change with a restart needs of the Deployer."""

    async def release_config(
        self, app_name: str, change: ConfigChange, out: DeployOutput
    ) -> Release | None: ...


class ConfigVars:
    """The one owner of config changes and their ConfigChanged events."""

    def __init__(self, apps: AppStore, events: EventStore, deployer: ConfigReleaser) -> None:
        self._apps = apps
        self._events = events
        self._deployer = deployer

    def get(self, app: str) -> dict[str, str]:
        return self._apps.config(app)

    def check(self, app: str, change: ConfigChange) -> None:
        """Refuse at once a change that cannot apply to the config as it is now (it is
        checked again when it applies)."""
        change.applied_to(self._apps.config(app), app)

    async def change(
        self, app: str, change: ConfigChange, out: DeployOutput, *, restart: bool = True
    ) -> Release | None:
        """Apply `change`; with `restart`, as a new release of a deployed app (None: not
        deployed yet, stored only), else stored for the next release."""
        described = change.describe()
        if not restart:
            self._apps.change_config(app, change)
            self._events.record(app, "ConfigChanged", described + " (no restart)")
            out.heading(f"{described}; not restarted (takes effect on the next release)")
            return None
        release = await self._deployer.release_config(app, change, out)
        if release is None:
            out.heading(f"{described}; {app} is not deployed yet, nothing to restart")
        return release
