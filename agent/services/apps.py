"""Apps themselves: creating one (by apps:create or a first push), its settings, and
destroying it, each with its event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from agent.appsettings import AppSettings, apply_setting
from agent.config import Config
from agent.deploy.output import DeployOutput
from agent.errors import Conflict
from agent.names import check_app
from agent.repos import ensure_repo, remove_repo
from agent.services.domains import default_domain
from agent.store.apps import AppStore
from agent.store.events import EventStore


class AppLifecycle(Protocol):
    """What apps' changes need of the Deployer."""

    async def refresh_routing(self, app_name: str) -> None: ...

    async def destroy(self, app_name: str, out: DeployOutput) -> None: ...


class Apps:
    """The one owner of creating, configuring and destroying apps."""

    def __init__(self, config: Config, apps: AppStore, events: EventStore,
                 deployer: AppLifecycle, ssh_command: str,
                 before_destroy: Callable[[str, DeployOutput], Awaitable[None]] | None = None
                 ) -> None:
        self._config = config
        self._apps = apps
        self._events = events
        self._deployer = deployer
        self._ssh_command = ssh_command
        # Add-ons: a final backup of each, then removed (a failed backup stops the destroy).
        self._before_destroy = before_destroy

    def check_new(self, name: str) -> str:
        """`name` if an app may be created with it: valid, and its default domain not
        another app's custom domain."""
        check_app(name)
        domain = default_domain(name, self._config.deploy.domain)
        owner = self._apps.domain_owner(domain) if domain else None
        if owner is not None:
            raise Conflict(f"{name}'s default domain {domain} is a custom domain of {owner}")
        return name

    def create(self, name: str) -> Path:
        """A new app and its repository (the name refused if taken or not free)."""
        self.check_new(name)
        self._apps.create(name)
        try:
            path = self.ensure_repo(name)
        except BaseException:
            self._apps.delete(name)
            raise
        self._events.record(name, "AppCreated", "created")
        return path

    def ensure_for_push(self, name: str) -> tuple[Path, bool]:
        """A push's app: created if needed; the repository's hooks always (re)installed."""
        created = not self._apps.exists(name)
        if created:
            self.check_new(name)
            self._apps.create(name)
            self._events.record(name, "AppCreated", "created by a push")
        return self.ensure_repo(name), created

    def ensure_repo(self, name: str) -> Path:
        return ensure_repo(self._config.paths, name, command=self._ssh_command,
                           owner=self._config.ssh.user)

    async def set(self, name: str, changes: dict[str, str]) -> AppSettings:
        """apps:set: every KEY=VALUE checked before any is stored; routing follows."""
        settings = self._apps.get(name).settings
        for key, value in changes.items():
            settings = apply_setting(settings, key, value)
        self._apps.save_settings(name, settings)
        await self._deployer.refresh_routing(name)
        return settings

    async def destroy(self, name: str, out: DeployOutput) -> None:
        if self._before_destroy is not None:
            await self._before_destroy(name, out)
        await self._deployer.destroy(name, out)
        remove_repo(self._config.paths, name)
        out.heading(f"{name} destroyed")
