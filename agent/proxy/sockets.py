"""Listening sockets the proxy binds itself, so that it can listen before it accepts.

A socket from `listening_socket` is bound and listening: the kernel completes handshakes
and queues connections in its backlog even while nobody accepts them yet. (An event
loop's `create_server(start_serving=False)` binds without listening, so connections made
then would be refused.)

IPv6 sockets are dual-stack (`IPV6_V6ONLY` off): bound to `::`, one socket answers IPv6
clients and IPv4 clients alike, the latter seen as IPv4-mapped addresses
(`::ffff:203.0.113.9`) that `peer_ip` turns back into plain IPv4. On a host without IPv6
(`ipv6.disable=1`), `usable_listen_address` falls back from `::` to `0.0.0.0`.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)

ANY_IPV6 = "::"
ANY_IPV4 = "0.0.0.0"
_MAPPED = "::ffff:"


def listen_address(wanted: str, ipv6_error: OSError | None) -> str:
    """The address to bind for `wanted`: the IPv6 any address falls back to IPv4's when
    `ipv6_error` says this host cannot open a dual-stack IPv6 socket (pure)."""
    if wanted == ANY_IPV6 and ipv6_error is not None:
        return ANY_IPV4
    return wanted


def usable_listen_address(wanted: str) -> str:
    """`wanted`, or `0.0.0.0` when it is `::` and this host has no IPv6 (logged once per
    call: call it once per start)."""
    if wanted != ANY_IPV6:
        return wanted
    error = _ipv6_error()
    address = listen_address(wanted, error)
    if address != wanted:
        log.warning("no IPv6 on this host (%s): listening on IPv4 only", error)
    return address


def _ipv6_error() -> OSError | None:
    """Why a dual-stack IPv6 socket cannot be opened and bound here, or None."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind((ANY_IPV6, 0))
    except OSError as exc:
        return exc
    return None


def takes_ipv4_only(sock: socket.socket, wanted: str) -> bool:
    """Whether `sock`, passed on from an earlier agent, misses IPv6 clients that `wanted`
    (the settings' listen address) asks for on a host that has IPv6."""
    return wanted == ANY_IPV6 and sock.family == socket.AF_INET and _ipv6_error() is None


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking TCP socket bound to `host`:`port` and listening (port 0: any).
    An IPv6 socket is dual-stack: on `::` it takes IPv4 connections too."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def peer_ip(peer: object) -> str:
    """A connection's client address as text from its `peername`: an IPv4 client of a
    dual-stack socket as plain IPv4 (`203.0.113.9`, not `::ffff:203.0.113.9`); "-" when
    there is none."""
    if not isinstance(peer, tuple) or not peer:
        return "-"
    ip = str(peer[0])
    if ip.startswith(_MAPPED) and "." in ip:
        return ip[len(_MAPPED):]
    return ip
