"""An app's domains: who may hold which name, and adding or removing one together with
the routing change, so that a change that fails leaves no trace.

Names directly under `deploy.domain` (and `deploy.domain` itself) are reserved for the
apps' default domains (`APP.deploy.domain`): no app may add one as a custom domain.
"""

from __future__ import annotations

import logging
from typing import Protocol

from agent.errors import BerthError, Conflict
from agent.names import check_domain
from agent.store.apps import AppStore
from agent.store.events import EventStore

log = logging.getLogger(__name__)


def reserved_for(domain: str, deploy_domain: str) -> str | None:
    """The app whose default domain `domain` is ("" for `deploy.domain` itself); None
    when the name is free for custom use."""
    if not deploy_domain:
        return None
    if domain == deploy_domain:
        return ""
    head, dot, rest = domain.partition(".")
    return head if dot and rest == deploy_domain else None


def default_domain(app: str, deploy_domain: str) -> str | None:
    return f"{app}.{deploy_domain}" if deploy_domain else None


class Routing(Protocol):
    """What a domain change needs of the Deployer."""

    def hosts(self, app: str) -> list[str]: ...

    async def refresh_routing(self, app_name: str) -> None: ...


class Domains:
    """The one owner of domain changes and their DomainAdded/DomainRemoved events."""

    def __init__(self, deploy_domain: str, apps: AppStore, events: EventStore,
                 routing: Routing) -> None:
        self._deploy_domain = deploy_domain
        self._apps = apps
        self._events = events
        self._routing = routing

    def hosts(self, app: str) -> list[str]:
        self._apps.get(app)
        return self._routing.hosts(app)

    def custom(self, app: str) -> list[str]:
        return self._apps.domains(app)

    def check_free(self, app: str, domain: str) -> str:
        """`domain` if `app` may add it; refused with one line otherwise."""
        check_domain(domain)
        owner = reserved_for(domain, self._deploy_domain)
        if owner == app:
            raise Conflict(f"{domain} is already {app}'s default domain")
        if owner is not None:
            raise Conflict(f"{domain} is reserved: names directly under "
                           f"{self._deploy_domain} are apps' default domains")
        return domain

    async def add(self, app: str, domain: str) -> list[str]:
        self.check_free(app, domain)
        self._apps.add_domain(app, domain)
        try:
            await self._routing.refresh_routing(app)
        except BaseException:
            self._apps.remove_domain(app, domain)
            await self._restore(app)
            raise
        self._events.record(app, "DomainAdded", domain)
        return self._routing.hosts(app)

    async def remove(self, app: str, domain: str) -> list[str]:
        self._apps.remove_domain(app, domain)
        try:
            await self._routing.refresh_routing(app)
        except BaseException:
            self._apps.add_domain(app, domain)
            await self._restore(app)
            raise
        self._events.record(app, "DomainRemoved", domain)
        return self._routing.hosts(app)

    async def _restore(self, app: str) -> None:
        """Routing as the (restored) store says, after a failed change."""
        try:
            await self._routing.refresh_routing(app)
        except BerthError as exc:
            log.error("routing not restored after a failed domain change app=%s error=%s",
                      app, exc)
