"""The proxy's public value types: upstream addresses, per-app options and the reports.

These are what the agent hands to the proxy and gets back; they carry no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.proxy.errors import InvalidUpstream


@dataclass(frozen=True)
class Upstream:
    """One web instance the proxy forwards to."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not self.host or not 0 < self.port < 65536:
            raise InvalidUpstream(self.host, self.port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RouteOptions:
    """Per-app behaviour of a route."""

    max_body_bytes: int = 100 * 1024 * 1024  # 413 above it
    hsts: bool = False  # Strict-Transport-Security on HTTPS responses
    https_redirect: bool = True  # HTTP -> HTTPS (301/308) for hosts that have a certificate


@dataclass(frozen=True)
class DrainReport:
    """What draining a set of upstreams took (returned by `swap` and `remove_route`)."""

    upstreams: tuple[Upstream, ...]
    completed: int  # requests in flight at the start that finished normally
    timed_out: int  # stragglers cut at the deadline (answered 504, or closed mid-response)
    tunnels_closed: int  # upgraded (WebSocket) connections closed
    idle_closed: int  # pooled keep-alive connections closed
    seconds: float


@dataclass(frozen=True)
class RouteCounters:
    """A snapshot of one route's counters since it was first set."""

    requests: int
    status_1xx: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    in_flight: int
    upstream_errors: int  # refused, reset, timed out or malformed upstream answers
    bytes_in: int  # request body bytes forwarded to upstreams
    bytes_out: int  # response bytes written to clients (heads included)
