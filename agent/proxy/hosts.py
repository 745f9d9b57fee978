"""Host names: normalising a request's Host header and validating a route's host patterns.

Pure functions. A request's Host is lowercased, stripped of its port and of a trailing
dot, so `Example.COM.:443` routes like `example.com`. Route hosts are exact DNS names or
one-label wildcards (`*.example.com` matches `a.example.com`, not `a.b.example.com` and
not `example.com`), the same rule TLS uses for wildcard certificates.
"""

from __future__ import annotations

import re

from agent.proxy.errors import InvalidHost

# reg-name (letters, digits, '-', '.', '_') or a bracketed IPv6 literal, then an optional port.
_HOST_HEADER = re.compile(
    rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}))(?::[0-9]{0,5})?"
)
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def parse_host_header(raw: bytes) -> str | None:
    """The routing name in a Host header value, or None when the value is malformed."""
    match = _HOST_HEADER.fullmatch(raw)
    if match is None:
        return None
    name = match.group(1).decode("ascii").lower()
    name = name.removesuffix(".")
    if not name or ".." in name:
        return None
    return name


def check_route_host(host: str) -> str:
    """A route host as given, if it is a lowercase DNS name or a `*.` wildcard of one."""
    name = host.removeprefix("*.")
    labels = name.split(".")
    if (
        not name
        or len(host) > 253
        or host != host.lower()
        or not all(_LABEL.fullmatch(label) for label in labels)
        or (host.startswith("*.") and len(labels) < 2)
    ):
        raise InvalidHost(host)
    return host


def wildcard_parent(host: str) -> str:
    """The wildcard pattern a name falls under: `a.example.com` -> `*.example.com`."""
    _, dot, rest = host.partition(".")
    return "*." + rest if dot and rest else ""
