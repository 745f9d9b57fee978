"""What the proxy's connection objects need of each other, as small `Protocol`s.

The objects form a chain: a client connection runs exchanges; an exchange talks to an
upstream connection; after a 101 a tunnel joins a client and an upstream connection; a
route target counts the exchanges, pools the connections and holds the tunnels. Each
module names the others only through these types, so the modules import in one
direction (client -> exchange -> upstream, tunnel; routes -> interfaces) and no import
circle exists among them, even for type checking. Each Protocol lists exactly what its
users call.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from agent.proxy.request_head import RequestHead
from agent.proxy.response_head import ResponseHead

# Why a client connection stopped reading (a bit set: reading resumes when all are clear).
PAUSE_UPSTREAM = 1  # the upstream does not take the request body as fast as it comes
PAUSE_PENDING = 2  # body buffered while the upstream connection opens
PAUSE_QUEUE = 4  # pipelined requests wait for the active one


class TunnelSide(Protocol):
    """An upgraded connection, as its two connections and its target see it."""

    def from_client(self, data: bytes) -> None: ...

    def from_upstream(self, data: bytes) -> None: ...

    def client_full(self, full: bool) -> None: ...

    def upstream_full(self, full: bool) -> None: ...

    def close(self) -> None: ...


class ClientSide(Protocol):
    """A client connection, as its exchanges and its tunnel see it."""

    tls: bool
    sni: str
    peer_ip: str
    transport: asyncio.Transport

    def arm(self, seconds: float) -> None: ...

    def pause(self, reason: int) -> None: ...

    def resume(self, reason: int) -> None: ...

    def upstream_head(self, head: RequestHead, request_id: bytes) -> bytes: ...

    def exchange_done(self, exchange: ExchangeSide, tunnel: bool) -> None: ...

    def abort_after_exchange(self) -> None: ...

    def become_tunnel(self, tunnel: TunnelSide) -> None: ...

    def close(self) -> None: ...


class UpstreamSide(Protocol):
    """An upstream connection, as its exchange, its tunnel and its target's pool see it."""

    transport: asyncio.Transport
    idle_since: float

    def usable(self) -> bool: ...

    def start_response(self, exchange: ExchangeSide, head_request: bool, dechunk: bool) -> None: ...

    def park(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abandon(self) -> None: ...

    def close(self) -> None: ...


class ExchangeSide(Protocol):
    """An exchange, as its upstream connection and its target see it."""

    request_complete: bool
    keep_alive: bool

    def response_head(self, head: ResponseHead) -> bytes: ...

    def interim(self, head: ResponseHead) -> None: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def body_arriving(self) -> None: ...

    def upstream_full(self, full: bool) -> None: ...

    def response_end(self) -> None: ...

    def upstream_failed(self, status: int, reason: str) -> None: ...

    def retry_fresh(self) -> bool: ...

    def retry_elsewhere(self) -> bool: ...

    def switch_protocols(self, conn: UpstreamSide, client_head: bytes) -> TunnelSide: ...

    def take_held(self) -> bytes: ...

    def fail(self, status: int) -> None: ...
