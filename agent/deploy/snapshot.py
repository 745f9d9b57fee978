"""One operation's view of an app, read once: the app's row, its hosts and its storage.

An operation takes a `Snapshot` once it holds the app's lock and works from it to the
end: the plan it rolls out, the early start's rules, the release phase's mounts, the
final announcement and the certificates it asks for all see the same hosts and mounts
(before, the store was asked again at each of those points). `AppViews` reads them;
`plan` turns a snapshot and a release into the roll-out's `RolloutPlan`, a pure step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent import storage
from agent.appjson import parse_app_json
from agent.config import Config
from agent.deploy.rolloutplan import RolloutPlan
from agent.errors import BerthError
from agent.proxy import RouteOptions
from agent.releases import Release
from agent.services.domains import reserved_for
from agent.store.apps import App, AppStore


@dataclass(frozen=True)
class Snapshot:
    """The app as one operation found it."""

    app: App
    hosts: tuple[str, ...]
    mounts: tuple[tuple[str, str], ...]  # (host directory, container path)
    tls: bool  # its first host has a certificate

    @property
    def name(self) -> str:
        return self.app.name


class AppViews:
    """Reads snapshots, hosts and mounts of apps from the store and the configuration."""

    def __init__(
        self, config: Config, apps: AppStore, tls_hosts: Callable[[], frozenset[str]]
    ) -> None:
        self._config = config
        self._apps = apps
        self._tls_hosts = tls_hosts

    def take(self, app: str) -> Snapshot:
        """The app's snapshot (AppNotFound when there is no such app)."""
        row = self._apps.get(app)
        return self.of(row)

    def of(self, row: App) -> Snapshot:
        hosts = tuple(self.hosts(row.name))
        return Snapshot(app=row, hosts=hosts, mounts=self.mounts(row.name),
                        tls=bool(hosts) and hosts[0] in self._tls_hosts())

    def hosts(self, app: str) -> list[str]:
        """The names the app answers on: its default domain first, then its own."""
        default = self._config.deploy.domain
        hosts = [f"{app}.{default}"] if default else []
        # A name reserved for an app's default domain is never served as a custom one
        # (a row from before the reservation stays in the store, unused).
        hosts += [d for d in self._apps.domains(app)
                  if d not in hosts and reserved_for(d, default) is None]
        return hosts

    def mounts(self, app: str) -> tuple[tuple[str, str], ...]:
        """(host directory, container path) of the app's persistent storage; the host
        directories are (re)created, so a directory removed by hand comes back empty
        rather than as a root-owned one the app cannot write."""
        root = self._config.paths.storage
        try:
            return tuple((str(storage.prepare(root, app, path)), path)
                         for path in self._apps.mounts(app))
        except OSError as exc:
            raise BerthError(f"persistent storage of {app} under {root}: {exc}") from exc

    def plan(
        self, snapshot: Snapshot, release: Release, formation: Mapping[str, int] | None = None
    ) -> RolloutPlan:
        """Where `release` should end up for the app of `snapshot`."""
        settings = snapshot.app.settings
        deploy = self._config.deploy
        return RolloutPlan(
            release=release,
            formation=dict(snapshot.app.formation if formation is None else formation),
            hosts=list(snapshot.hosts),
            options=RouteOptions(max_body_bytes=settings.max_body or deploy.max_body_bytes,
                                 hsts=settings.hsts),
            checks=parse_app_json(release.app_json).checks,
            tls=snapshot.tls,
            restart_policy=settings.restart_policy or deploy.restart_policy,
            health_timeout=settings.health_timeout or deploy.health_timeout,
            mounts=snapshot.mounts,
        )
