"""Settings of the proxy's data plane (the `[proxy]` table of berth.toml).

Every limit and every wait the proxy applies is here, so a deployment (or a test) can
tighten or loosen each one. Timeouts are in seconds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ProxySettings:
    # Where to listen. `::` (the default) is every address of both families, one
    # dual-stack socket per port (IPv4 only on a host without IPv6); `0.0.0.0` is IPv4
    # only. `https_port = None` disables TLS; port 0 binds an ephemeral port.
    listen: str = "::"
    http_port: int = 80
    https_port: int | None = 443

    # Request head limits: a header block (request line included) over `max_header_bytes`
    # answers 431, a request line over `max_request_line_bytes` answers 414.
    max_header_bytes: int = 32 * 1024
    max_request_line_bytes: int = 8 * 1024
    max_headers: int = 100
    # An upstream response head larger than this is a broken upstream (502).
    max_response_head_bytes: int = 64 * 1024

    # Client side waits.
    request_head_timeout: float = 10.0  # first byte to end of head (slowloris)
    request_body_timeout: float = 60.0  # longest silence while a request body streams
    keepalive_timeout: float = 60.0  # idle keep-alive connection between requests
    send_timeout: float = 60.0  # longest time a client may refuse to read our response
    tls_handshake_timeout: float = 10.0
    # After an error answer that leaves unread request bytes, keep reading (and
    # discarding) this long so the client sees the answer instead of a reset.
    linger_timeout: float = 2.0

    # Upstream side waits.
    upstream_connect_timeout: float = 5.0  # -> 504
    upstream_response_timeout: float = 60.0  # request sent, no response head yet -> 504
    upstream_read_timeout: float = 300.0  # longest silence inside a response body
    tunnel_idle_timeout: float = 3600.0  # upgraded (WebSocket) connection with no bytes
    upstream_idle_timeout: float = 4.0  # pooled keep-alive connection unused this long closes
    # Passive health: an upstream whose connect is refused or reset is left out of rotation
    # (while another is up) and tried again after this wait, doubled per failure in a row
    # up to `upstream_retry_max`.
    upstream_retry_backoff: float = 0.5
    upstream_retry_max: float = 8.0

    # Started with `restoring=True` (the agent, before its routes are back), the proxy
    # holds the listening sockets without accepting (connections wait in the backlog) until
    # told the routes are restored, at most this long; after that it accepts, answering
    # 503 with Retry-After for hosts it does not know yet.
    restore_timeout: float = 10.0

    # Upstreams dropped by `set_route` drain in the background this long (swap and
    # remove_route take the caller's timeout).
    drain_timeout: float = 30.0
    # How long `python -m agent.proxy` lets in-flight requests finish on SIGTERM.
    shutdown_timeout: float = 30.0
    # When the proxy stops (an agent restart), an idle keep-alive connection is kept this
    # long for one more request, answered with `Connection: close`, then closed: a client
    # between two requests learns of the restart from an answer, not from a reset. A TLS
    # connection accepted but not yet handshaken gets as long to finish its handshake.
    shutdown_idle_timeout: float = 1.0

    # Capacity.
    max_connections: int = 16384  # open client connections; more are answered 503
    pool_size: int = 64  # idle keep-alive connections kept per upstream
    backlog: int = 4096

    # Peers whose X-Forwarded-*/X-Request-ID/Forwarded headers are believed (CIDRs, e.g. a
    # CDN's ranges); from anyone else those headers are dropped and set afresh.
    trusted_proxies: tuple[str, ...] = ()

    access_log: bool = True

    def __post_init__(self) -> None:
        for name in ("http_port", "https_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535, not {port}")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {cidr!r} is not an address or CIDR") from exc
        for name, value in self.__dict__.items():
            if name.endswith("_timeout") and not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
            if name.startswith(("max_", "pool_", "backlog", "upstream_retry")) and not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
