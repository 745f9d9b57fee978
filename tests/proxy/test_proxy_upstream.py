"""Upstream connections: pool expiry, stale pooled connections, connect timeouts."""

from __future__ import annotations

import asyncio
import socket

from agent.proxy import Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import eventually, get, request, running_proxy


async def test_idle_pooled_connections_close_after_their_timeout() -> None:
    async with running_backend("a") as a, running_proxy(upstream_idle_timeout=0.3) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        await request(proxy.http_port, get("/hello"))
        assert a.open_connections == 1
        await eventually(lambda: a.open_connections == 0, timeout=5)


async def test_a_stale_pooled_connection_is_retried_on_a_fresh_one() -> None:
    """The upstream answers once, then drops the kept-alive connection on the next request
    (what a server closing idle connections looks like in the race): the client never sees it."""
    served = 0

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        try:
            await reader.readuntil(b"\r\n\r\n")  # the next request on this connection...
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()  # ...is dropped unanswered

    server = await asyncio.start_server(one_per_connection, "127.0.0.1", 0)
    try:
        async with running_proxy() as proxy:
            port = server.sockets[0].getsockname()[1]
            proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", port)])
            for _ in range(5):
                response, _ = await request(proxy.http_port, get("/"))
                assert (response.status, response.body) == (200, b"ok")
            assert served == 5
            assert proxy.counters("app").status_5xx == 0
            # A request with a body that already went out is not replayed: 502.
            response, _ = await request(
                proxy.http_port,
                b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc",
            )
            assert response.status == 502
    finally:
        server.close()
        await server.wait_closed()


async def test_upstream_connect_timeout_is_504() -> None:
    # A listening socket that never accepts, its backlog full: new SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        async with running_proxy(upstream_connect_timeout=0.3) as proxy:
            proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", port)])
            loop = asyncio.get_running_loop()
            started = loop.time()
            response, _ = await request(proxy.http_port, get("/"))
            assert response.status == 504
            assert loop.time() - started < 3.0
    finally:
        for sock in [*fillers, listener]:
            sock.close()
