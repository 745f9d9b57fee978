"""`Proxy`: the data plane's public face, started and driven in-process by the agent.

It binds the listeners, owns the route table, the certificate store and the ACME tokens,
and runs the drain that follows a swap: mark the old targets draining (so none is ever
picked again and their connections are not pooled), close their idle keep-alive
connections and tunnels, wait for their in-flight requests up to the deadline, then cut
the stragglers with 504. The caller learns when it is safe to stop the old containers.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Mapping, Sequence

from agent.proxy.certs import CertificateStore
from agent.proxy.challenges import ChallengeTokens
from agent.proxy.client import ClientConnection
from agent.proxy.context import Context
from agent.proxy.errors import ProxyAlreadyRunning, ProxyNotRunning
from agent.proxy.model import DrainReport, RouteCounters, RouteOptions, Upstream
from agent.proxy.probe import Challenge, ProbeKey
from agent.proxy.routes import RouteTable, Target
from agent.proxy.settings import ProxySettings
from agent.proxy.sockets import listening_socket, usable_listen_address
from agent.proxy.tls_listener import TlsClientConnection, TlsListener

log = logging.getLogger(__name__)

_DRAIN_POLL = 0.01


class Proxy:
    def __init__(
        self, settings: ProxySettings, *, access_log: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        self.certificates = CertificateStore()
        self.challenges = ChallengeTokens()
        self.probe = ProbeKey()  # answered on /.well-known/berth-probe/ (berth doctor)
        if not settings.access_log:
            access_log = None
        elif access_log is None:
            access_log = logging.getLogger("agent.proxy.access")
        self._access_log = access_log
        self._table = RouteTable()
        self._ctx: Context | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._http_port: int | None = None
        self._https_port: int | None = None
        self._drains: set[asyncio.Task[DrainReport]] = set()
        self._tls: TlsListener | None = None
        self._opening: asyncio.Task[None] | None = None  # accepting after restore_timeout

    # lifecycle ---------------------------------------------------------------------------

    async def start(
        self, *, restoring: bool = False, sockets: Mapping[str, socket.socket] | None = None
    ) -> None:
        """Bind HTTP (and HTTPS unless `https_port` is None) and start serving.

        With `restoring`, the sockets are bound but nothing is accepted (connections wait
        in the backlog) until `routes_restored()`, or `restore_timeout` at most.
        `sockets` are listening sockets to serve on instead of binding ("http", "https");
        the proxy closes them when it stops.
        """
        sockets = sockets or {}
        if self._ctx is not None:
            raise ProxyAlreadyRunning()
        loop = asyncio.get_running_loop()
        settings = self.settings
        _raise_open_files_limit(settings.max_connections * 2 + 256)
        ctx = Context(
            settings, loop, self._table, self.certificates, self.challenges, self._access_log,
            self.probe,
        )
        missing = "http" not in sockets or (settings.https_port is not None and "https" not in sockets)
        host = usable_listen_address(settings.listen) if missing else settings.listen
        http = await loop.create_server(
            lambda: ClientConnection(ctx, False),
            sock=sockets.get("http") or listening_socket(host, settings.http_port, settings.backlog),
            backlog=settings.backlog, start_serving=not restoring,
        )  # fmt: skip
        self._servers.append(http)
        self._http_port = _bound_port(http)
        if settings.https_port is not None:
            listener = TlsListener(
                settings, self.certificates, lambda sni: TlsClientConnection(ctx, sni),
                lambda: len(ctx.clients),
            )  # fmt: skip
            self._https_port = ctx.https_port = await listener.start(
                host, settings.https_port, accepting=not restoring,
                sock=sockets.get("https"),
            )
            self._tls = listener
        ctx.start_sweeper(ctx.close_idle_upstreams)
        self._ctx = ctx
        if restoring:
            ctx.restoring = True
            self._opening = loop.create_task(self._accept_after(settings.restore_timeout))
        log.info(
            "proxy %s http=%s https=%s",
            "bound, waiting for its routes" if restoring else "listening",
            self._http_port, self._https_port,
        )  # fmt: skip

    async def routes_restored(self) -> None:
        """Every route is set: accept connections, and answer unknown hosts 404."""
        ctx = self._ctx
        if ctx is None or not ctx.restoring:
            return
        ctx.restoring = False
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        await self._accept()
        log.info("proxy listening http=%s https=%s", self._http_port, self._https_port)

    async def _accept_after(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        log.warning("routes not restored after %.0fs: accepting (503 for unknown hosts)", timeout)
        self._opening = None
        await self._accept()

    async def _accept(self) -> None:
        for server in self._servers:
            if not server.is_serving():
                await server.start_serving()
        if self._tls is not None:
            self._tls.accept()

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise ProxyNotRunning("tell the HTTP port")
        return self._http_port

    @property
    def https_port(self) -> int | None:
        return self._https_port

    async def stop(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish up to `timeout`, close the rest.

        Idle keep-alive connections get `shutdown_idle_timeout` for one more request."""
        ctx = self._ctx
        if ctx is None:
            return
        loop = ctx.loop
        ctx.stopping = True
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        for server in self._servers:
            server.close()
        if self._tls is not None:  # a TLS client still greeting gets the idle grace
            await self._tls.close(min(timeout, self.settings.shutdown_idle_timeout))
            self._tls = None
        deadline = loop.time() + timeout
        for client in list(ctx.clients):
            client.shut_down(close_idle=False)
        await self._wait_for_clients(min(deadline, loop.time() + self.settings.shutdown_idle_timeout))
        ctx.closing_idle = True
        for client in list(ctx.clients):
            client.shut_down()
        await self._wait_for_clients(deadline)
        for client in list(ctx.clients):
            client.abort()
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
        for route in self._table.routes():
            for target in route.targets:
                target.close_idle()
        await ctx.stop_sweeper()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
        self._ctx = None
        log.info("proxy stopped")

    async def _wait_for_clients(self, deadline: float) -> None:
        ctx = self._ctx
        while ctx is not None and ctx.clients and ctx.loop.time() < deadline:
            await asyncio.sleep(_DRAIN_POLL)

    # routes ------------------------------------------------------------------------------

    def set_route(
        self,
        name: str,
        hosts: Sequence[str],
        upstreams: Sequence[Upstream],
        options: RouteOptions = RouteOptions(),  # noqa: B008 (frozen: one shared default is fine)
    ) -> None:
        """Create or replace a route atomically; dropped upstreams drain in the background."""
        dropped = self._table.set(name, hosts, upstreams, options)
        log.info(
            "route set name=%s hosts=%s upstreams=%s",
            name, ",".join(hosts), ",".join(map(str, upstreams)),
        )  # fmt: skip
        if dropped:
            if self._ctx is None:
                for target in dropped:
                    target.close_idle()
                return
            task = self._ctx.loop.create_task(self._drain(dropped, self.settings.drain_timeout))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)

    async def swap(
        self, name: str, upstreams: Sequence[Upstream], drain_timeout: float
    ) -> DrainReport:
        """Point a route at new upstreams; returns once the old ones are drained."""
        dropped = self._table.swap(name, upstreams)
        log.info("route swapped name=%s upstreams=%s", name, ",".join(map(str, upstreams)))
        return await self._drain(dropped, drain_timeout)

    async def remove_route(self, name: str, drain_timeout: float) -> None:
        route = self._table.remove(name)
        log.info("route removed name=%s", name)
        await self._drain(list(route.targets), drain_timeout)

    def counters(self, name: str) -> RouteCounters:
        return self._table.tally(name).snapshot()

    def probe_challenges(self, count: int, caller: str = "") -> list[Challenge]:
        return self.probe.issue(count, caller)

    def serves_tls(self, host: str) -> bool:
        return self.certificates.covers(host)

    # draining ----------------------------------------------------------------------------

    async def _drain(self, targets: list[Target], timeout: float) -> DrainReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        ctx = self._ctx
        idle_closed = tunnels_closed = 0
        for target in targets:
            if ctx is not None:
                ctx.draining.add(target)
            idle, tunnels = target.drain()
            idle_closed += idle
            tunnels_closed += tunnels
        in_flight = sum(t.in_flight for t in targets)
        deadline = started + timeout
        while any(t.in_flight for t in targets) and loop.time() < deadline:
            await asyncio.sleep(_DRAIN_POLL)
        stragglers = sum(t.cut_stragglers(504) for t in targets)
        for target in targets:
            target.close_idle()
            if ctx is not None:
                ctx.draining.discard(target)
        report = DrainReport(
            upstreams=tuple(t.upstream for t in targets),
            completed=max(0, in_flight - stragglers),
            timed_out=stragglers,
            tunnels_closed=tunnels_closed,
            idle_closed=idle_closed,
            seconds=loop.time() - started,
        )
        log.info(
            "drained upstreams=%s completed=%d timed_out=%d tunnels=%d seconds=%.2f",
            ",".join(t.label for t in targets), report.completed, report.timed_out,
            report.tunnels_closed, report.seconds,
        )  # fmt: skip
        return report


def _bound_port(server: asyncio.AbstractServer) -> int:
    sockets = server.sockets  # type: ignore[attr-defined]
    return int(sockets[0].getsockname()[1])


def _raise_open_files_limit(wanted: int) -> None:
    """Let the process hold as many sockets as `max_connections` asks (up to the hard cap)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit wanted=%d error=%s", target, exc)
