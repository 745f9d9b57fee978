"""The route table: which hosts go to which upstreams, and how one is chosen.

A `Route` is one app: its host names, its `Target`s (one per upstream address, each with
its in-flight count, idle keep-alive pool and open tunnels) and its options. The table
maps exact names and one-label wildcards to routes. All of it lives on the event loop
thread, so choosing a target and counting the request in flight happen in one step with
no await in between: after a swap, no new request can land on an old target.

`least_loaded` (the balancer) is pure: fewest requests in flight, ties broken by
rotating the starting point so equal upstreams share the load. Targets marked down by
their passive `Health` are left out while another is up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from agent.proxy.errors import HostTaken, RouteNotFound
from agent.proxy.health import Health
from agent.proxy.hosts import check_route_host, wildcard_parent
from agent.proxy.model import RouteCounters, RouteOptions, Upstream

if TYPE_CHECKING:
    from agent.proxy.interfaces import ExchangeSide, TunnelSide, UpstreamSide
    from agent.proxy.settings import ProxySettings

log = logging.getLogger(__name__)


class Tally:
    """A route's running counters (mutated on the hot path, read as `RouteCounters`)."""

    __slots__ = ("by_class", "bytes_in", "bytes_out", "in_flight", "upstream_errors")

    def __init__(self) -> None:
        self.by_class = [0] * 10  # index: status // 100 (statuses have three digits)
        self.in_flight = 0
        self.upstream_errors = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def snapshot(self) -> RouteCounters:
        c = self.by_class
        return RouteCounters(
            requests=sum(c),
            status_1xx=c[1],
            status_2xx=c[2],
            status_3xx=c[3],
            status_4xx=c[4],
            status_5xx=sum(c[5:]),  # and the odd 6xx-9xx an upstream may send
            in_flight=self.in_flight,
            upstream_errors=self.upstream_errors,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )


class Target:
    """One upstream address of one route, with everything open towards it."""

    __slots__ = (
        "draining", "exchanges", "health", "idle", "in_flight", "label", "tunnels", "upstream",
    )  # fmt: skip

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.label = str(upstream)
        self.in_flight = 0
        self.exchanges: set[ExchangeSide] = set()
        self.idle: list[UpstreamSide] = []  # pooled keep-alive connections, LIFO
        self.tunnels: set[TunnelSide] = set()
        self.draining = False
        self.health = Health()

    # passive health --------------------------------------------------------------------

    def connected(self, route: str) -> None:
        """A connect to it succeeded (logged when that brings it back)."""
        if self.health.down and self.health.succeeded():
            log.info("upstream up route=%s upstream=%s", route, self.label)

    def connect_failed(
        self, route: str, error: OSError, now: float, settings: ProxySettings
    ) -> None:
        """A connect was refused or reset: down (logged once), its pool closed."""
        health = self.health
        if health.failed(now, settings.upstream_retry_backoff, settings.upstream_retry_max):
            self.close_idle()  # pooled connections to it are as dead as it is
            log.warning(
                "upstream down route=%s upstream=%s error=%s retry_in=%.1fs",
                route, self.label, error.strerror or error, health.delay,
            )  # fmt: skip
        else:
            log.debug("upstream still down upstream=%s error=%s", self.label, error)

    # requests in flight -------------------------------------------------------------

    def begin(self, exchange: ExchangeSide) -> None:
        """`exchange` is in flight to this target (chosen in the same step: no await)."""
        self.in_flight += 1
        self.exchanges.add(exchange)

    def end(self, exchange: ExchangeSide) -> None:
        self.in_flight -= 1
        self.exchanges.discard(exchange)
        if self.draining and self.in_flight == 0:
            self.exchanges.clear()

    def cut_stragglers(self, status: int) -> int:
        """End what is still in flight (a drain's deadline passed); how many there were."""
        stragglers = list(self.exchanges)
        for exchange in stragglers:
            exchange.fail(status)
        return len(stragglers)

    # connections -----------------------------------------------------------------------

    def take_idle(self) -> UpstreamSide | None:
        """A pooled keep-alive connection still usable, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
        return None

    def park(self, conn: UpstreamSide, now: float, limit: int) -> bool:
        """Pool a finished connection; False when it must close instead."""
        if self.draining or len(self.idle) >= limit:
            return False
        conn.idle_since = now
        self.idle.append(conn)
        return True

    def close_idle(self) -> int:
        """Close the pooled keep-alive connections; how many there were."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
        return len(idle)

    def close_idle_before(self, limit: float) -> None:
        """Close the pooled connections unused since before `limit` (a loop time)."""
        idle = self.idle
        if idle and idle[0].idle_since < limit:
            expired = [c for c in idle if c.idle_since < limit]
            idle[:] = [c for c in idle if c.idle_since >= limit]
            for conn in expired:
                conn.close()

    def tunnel_opened(self, tunnel: TunnelSide) -> None:
        self.tunnels.add(tunnel)

    def tunnel_closed(self, tunnel: TunnelSide) -> None:
        self.tunnels.discard(tunnel)

    def drain(self) -> tuple[int, int]:
        """No new request from now on: close idle connections and tunnels (their counts)."""
        self.draining = True
        idle_closed = self.close_idle()
        tunnels = list(self.tunnels)
        for tunnel in tunnels:
            tunnel.close()
        return idle_closed, len(tunnels)


class Route:
    __slots__ = ("_turn", "hosts", "name", "options", "tally", "targets")

    def __init__(
        self, name: str, hosts: tuple[str, ...], targets: tuple[Target, ...],
        options: RouteOptions, tally: Tally,
    ) -> None:  # fmt: skip
        self.name = name
        self.hosts = hosts
        self.targets = targets
        self.options = options
        self.tally = tally
        self._turn = 0

    def pick(self, now: float, avoid: tuple[Target, ...] = ()) -> Target | None:
        """The target for the next request, skipping `avoid` and those marked down (unless
        due for a retry, or all are down). None: no upstream left to try."""
        targets = self.targets
        if avoid:
            targets = tuple(t for t in targets if t not in avoid)
        if len(targets) == 1:
            target = targets[0]
        elif not targets:
            return None
        else:
            if any(t.health.down for t in targets):
                targets = tuple(t for t in targets if t.health.eligible(now)) or targets
            self._turn += 1
            target = least_loaded(targets, self._turn)
        if target.health.down:
            target.health.trying(now)
        return target


def least_loaded(targets: Sequence[Target], turn: int) -> Target:
    """The target with the fewest requests in flight, starting the scan at `turn`."""
    count = len(targets)
    best = targets[turn % count]
    for i in range(1, count):
        candidate = targets[(turn + i) % count]
        if candidate.in_flight < best.in_flight:
            best = candidate
    return best


class RouteTable:
    """Routes by name and by host; every change is one synchronous step."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._hosts: dict[str, Route] = {}  # exact names and "*.suffix" patterns
        self._tallies: dict[str, Tally] = {}

    def lookup(self, host: str) -> Route | None:
        route = self._hosts.get(host)
        if route is None:
            route = self._hosts.get(wildcard_parent(host))
        return route

    def get(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise RouteNotFound(name)
        return route

    def tally(self, name: str) -> Tally:
        tally = self._tallies.get(name)
        if tally is None:
            raise RouteNotFound(name)
        return tally

    def routes(self) -> Iterable[Route]:
        return self._routes.values()

    def set(
        self, name: str, hosts: Sequence[str], upstreams: Sequence[Upstream], options: RouteOptions
    ) -> list[Target]:
        """Create or replace a route; returns the targets it no longer uses."""
        checked = tuple(dict.fromkeys(check_route_host(h) for h in hosts))
        for host in checked:
            owner = self._hosts.get(host)
            if owner is not None and owner.name != name:
                raise HostTaken(host, owner.name)
        old = self._routes.get(name)
        targets, dropped = _retarget(old.targets if old else (), upstreams)
        tally = self._tallies.setdefault(name, Tally())
        route = Route(name, checked, targets, options, tally)
        if old is not None:
            for host in old.hosts:
                del self._hosts[host]
        for host in checked:
            self._hosts[host] = route
        self._routes[name] = route
        return dropped

    def swap(self, name: str, upstreams: Sequence[Upstream]) -> list[Target]:
        """Point a route at new upstreams; returns the targets it no longer uses."""
        route = self.get(name)
        route.targets, dropped = _retarget(route.targets, upstreams)
        return dropped

    def remove(self, name: str) -> Route:
        route = self.get(name)
        for host in route.hosts:
            del self._hosts[host]
        del self._routes[name]
        return route


def _retarget(
    current: tuple[Target, ...], upstreams: Sequence[Upstream]
) -> tuple[tuple[Target, ...], list[Target]]:
    """Targets for `upstreams`, reusing current ones for unchanged addresses."""
    by_upstream = {t.upstream: t for t in current}
    wanted = list(dict.fromkeys(upstreams))
    targets = tuple(by_upstream.pop(u) if u in by_upstream else Target(u) for u in wanted)
    return targets, list(by_upstream.values())
