"""Listening sockets the proxy binds itself, so that it can listen before it accepts.

A socket from `listening_socket` is bound and listening: the kernel completes handshakes
and queues connections in its backlog even while nobody accepts them yet. (An event
loop's `create_server(start_serving=False)` binds without listening, so connections made
then would be refused.)
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking TCP socket bound to `host`:`port` and listening (port 0: any)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
