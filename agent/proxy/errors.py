"""Errors the proxy's control API raises (the data plane answers HTTP statuses instead)."""

from __future__ import annotations

from agent.errors import BerthError, Conflict, InvalidName, NotFound


class InvalidHost(InvalidName):
    """A route host is not a DNS name or a `*.example.com` wildcard."""

    def __init__(self, value: str) -> None:
        super().__init__(
            "host", value, "must be a lowercase DNS name or a wildcard such as *.example.com"
        )


class InvalidUpstream(BerthError):
    """An upstream address cannot be connected to (empty host, port out of range)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"invalid upstream {host}:{port}: needs a host and a port 1-65535")
        self.host = host
        self.port = port


class HostTaken(Conflict):
    """A host is already served by another route."""

    def __init__(self, host: str, route: str) -> None:
        super().__init__(f"host {host!r} already belongs to route {route!r}")
        self.host = host
        self.route = route


class RouteNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__("route", name)
        self.route = name


class CertificateRejected(BerthError):
    """A certificate/key pair cannot be served (unreadable, mismatched, wrong name)."""

    def __init__(self, hostname: str, reason: str) -> None:
        super().__init__(f"certificate for {hostname!r} rejected: {reason}")
        self.hostname = hostname
        self.reason = reason


class ProxyNotRunning(BerthError):
    """An operation that needs the listening sockets ran before `start()` or after `stop()`."""

    status = 503

    def __init__(self, what: str) -> None:
        super().__init__(f"proxy not running: cannot {what}")


class ProxyAlreadyRunning(BerthError):
    status = 409

    def __init__(self) -> None:
        super().__init__("proxy already running: stop it before starting it again")
