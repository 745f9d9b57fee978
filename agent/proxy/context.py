"""What every connection of one proxy shares: settings, routes, certificates, clocks.

A `Context` is created by `Proxy` and handed to each connection it accepts, with the
per-proxy scratch of the hot path: the Host parse cache, the memo of upstream response
lines, and the buffer TLS connections receive decrypted bytes in. It also runs
the deadline sweeper: instead of one timer per connection and per wait, each connection
keeps a single `deadline` (a loop time) and the sweeper, ticking a few times a second,
calls `on_deadline()` on those whose time has come. Setting a deadline on the hot path is
one float store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable
from typing import Protocol

from agent.proxy.access_log import AccessLog
from agent.proxy.certs import CertificateStore
from agent.proxy.challenges import ChallengeTokens
from agent.proxy.probe import ProbeKey
from agent.proxy.response_head import HeadMemo
from agent.proxy.routes import RouteTable, Target
from agent.proxy.settings import ProxySettings

log = logging.getLogger(__name__)

_READ_BUFFER_SIZE = 64 * 1024
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Client(Protocol):
    """What the context and the proxy need of a client connection."""

    deadline: float

    def on_deadline(self, now: float) -> None: ...

    def shut_down(self, *, close_idle: bool = True) -> None: ...

    def abort(self) -> None: ...


class Context:
    def __init__(
        self,
        settings: ProxySettings,
        loop: asyncio.AbstractEventLoop,
        table: RouteTable,
        certificates: CertificateStore,
        challenges: ChallengeTokens,
        access_log: logging.Logger | None,
        probe: ProbeKey | None = None,
    ) -> None:
        self.settings = settings
        self.probe = probe or ProbeKey()  # berth doctor's probe (agent.proxy.probe)
        self.loop = loop
        self.table = table
        self.certificates = certificates
        self.challenges = challenges
        self.access_log = AccessLog(access_log) if access_log is not None else None
        self.clients: set[Client] = set()
        self.draining: set[Target] = set()  # targets dropped from routes, still winding down
        self.https_port: int | None = None  # bound HTTPS port, for redirects
        self.stopping = False  # new responses say `Connection: close`
        self.closing_idle = False  # stopping, past the idle grace: idle connections close
        self.restoring = False  # routes not all restored yet: unknown hosts get 503, not 404
        self.host_cache: dict[bytes, str | None] = {}
        self.head_memo = HeadMemo()  # upstream response lines already read
        # Where TLS connections receive decrypted reads; each read is copied out before the
        # next one (one event loop thread), so one buffer serves every connection.
        self.read_buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        self._trusted = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in settings.trusted_proxies
        )
        self._trusted_cache: dict[str, bool] = {}
        self._request_prefix = os.urandom(10).hex().encode()
        self._request_count = 0
        self._sweeper: asyncio.Task[None] | None = None
        shortest = min(
            settings.request_head_timeout, settings.keepalive_timeout,
            settings.upstream_connect_timeout, settings.upstream_response_timeout,
            settings.request_body_timeout, settings.send_timeout, settings.linger_timeout,
        )  # fmt: skip
        self.tick = min(0.5, max(0.02, shortest / 5))

    # identities ----------------------------------------------------------------------

    def next_request_id(self) -> bytes:
        self._request_count += 1
        return b"%s%012x" % (self._request_prefix, self._request_count)

    def is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        known = self._trusted_cache.get(ip)
        if known is None:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return False
            known = any(address in network for network in self._trusted)
            if len(self._trusted_cache) > 4096:
                self._trusted_cache.clear()
            self._trusted_cache[ip] = known
        return known

    # deadlines -------------------------------------------------------------------------

    def start_sweeper(self, extra: Callable[[float], None]) -> None:
        self._sweeper = self.loop.create_task(self._sweep(extra))

    async def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None

    async def _sweep(self, extra: Callable[[float], None]) -> None:
        idle_every = max(1, int(1.0 / self.tick))
        rounds = 0
        while True:
            await asyncio.sleep(self.tick)
            now = self.loop.time()
            for client in [c for c in self.clients if c.deadline <= now]:
                try:
                    client.on_deadline(now)
                except Exception:  # task boundary: one connection must not stop the sweeper
                    log.exception("deadline handling failed")
            rounds += 1
            if rounds % idle_every == 0:
                extra(now)

    def close_idle_upstreams(self, now: float) -> None:
        limit = now - self.settings.upstream_idle_timeout
        for route in self.table.routes():
            for target in route.targets:
                target.close_idle_before(limit)
