"""The proxy: Berth's HTTP/1.1 + TLS data plane (uvloop + httptools), driven in-process by the agent.

Modules, outside in: `server` (the `Proxy` the agent drives), `tls_listener` and
`sockets` (listening), `client` and `upstream` (the two kinds of connection), `exchange`
(one request/response), `tunnel` (upgraded connections), `interfaces` (the Protocols
they know each other by, so their imports run one way); the sans-io core:
`request_head`, `response_head`, `chunked`, `hosts`, `routes`, `health`, `pages`; the
stores: `certs`, `challenges`; `settings` and `model` (values).
"""

from agent.proxy.certs import CertificateStore
from agent.proxy.challenges import ChallengeTokens
from agent.proxy.errors import (
    CertificateRejected,
    HostTaken,
    InvalidHost,
    InvalidUpstream,
    ProxyAlreadyRunning,
    ProxyNotRunning,
    RouteNotFound,
)
from agent.proxy.model import DrainReport, RouteCounters, RouteOptions, Upstream
from agent.proxy.server import Proxy
from agent.proxy.settings import ProxySettings

__all__ = [
    "CertificateRejected",
    "CertificateStore",
    "ChallengeTokens",
    "DrainReport",
    "HostTaken",
    "InvalidHost",
    "InvalidUpstream",
    "Proxy",
    "ProxyAlreadyRunning",
    "ProxyNotRunning",
    "ProxySettings",
    "RouteCounters",
    "RouteNotFound",
    "RouteOptions",
    "Upstream",
]
