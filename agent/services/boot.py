"""Restoring what each app needs at agent start (its repository's hooks, its wish for
certificates), one app at a time: an app whose stored state is broken or conflicting is
logged, recorded as an event on that app and skipped; every other app is restored and
the agent starts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from agent.errors import BerthError
from agent.services.apps import Apps
from agent.services.domains import reserved_for
from agent.store.apps import AppStore
from agent.store.events import EventStore

log = logging.getLogger(__name__)

SKIPPED = "SkippedAtStart"


class HostsView(Protocol):
    def hosts(self, app: str) -> list[str]: ...


class CertificateWishes(Protocol):
    """What the start-up asks of the certificate manager."""

    def reconcile(self, apps: Mapping[str, tuple[Sequence[str], bool]]) -> None: ...

    def set_app_domains(self, app: str, domains: Sequence[str], *, acme: bool = True
                        ) -> None: ...


def skipped(events: EventStore, app: str, what: str, exc: BaseException) -> None:
    """Log and record on the app that `what` of it was skipped at start."""
    log.error("skipped at start app=%s what=%s error=%s", app, what, exc)
    events.record(app, SKIPPED, f"{what} not restored at start: {str(exc).splitlines()[0]}")


def restore_repos(apps: AppStore, events: EventStore, service: Apps) -> None:
    """Every app's repository hooks (re)written for the running agent."""
    for name in apps.names():
        try:
            service.ensure_repo(name)
        except (BerthError, OSError) as exc:
            skipped(events, name, "its repository", exc)


def _wishes(apps: AppStore, events: EventStore, routing: HostsView, deploy_domain: str,
            name: str) -> tuple[Sequence[str], bool]:
    """The app's domains and whether ACME is on for it; reserved rows are noted."""
    for domain in apps.domains(name):
        if reserved_for(domain, deploy_domain) is not None:
            skipped(events, name, f"custom domain {domain}",
                    BerthError(f"{domain} is reserved for an app's default domain"))
    try:
        acme = apps.get(name).settings.acme
    except BerthError as exc:
        skipped(events, name, "its settings", exc)
        acme = True
    return routing.hosts(name), acme


def restore_certificates(
    manager: CertificateWishes, apps: AppStore, events: EventStore, routing: HostsView,
    deploy_domain: str,
) -> None:
    """The complete desired state of certificates (apps destroyed while the agent was
    down are forgotten); an app the manager refuses is skipped, not the start."""
    desired: dict[str, tuple[Sequence[str], bool]] = {}
    for name in apps.names():
        try:
            desired[name] = _wishes(apps, events, routing, deploy_domain, name)
        except BerthError as exc:
            skipped(events, name, "its domains", exc)
            desired[name] = ((), True)
    try:
        manager.reconcile(desired)
    except BerthError as exc:
        log.error("certificate reconcile failed, restoring app by app error=%s", exc)
        for name, (hosts, acme) in desired.items():
            try:
                manager.set_app_domains(name, hosts, acme=acme)
            except BerthError as app_exc:
                skipped(events, name, "its certificates", app_exc)
