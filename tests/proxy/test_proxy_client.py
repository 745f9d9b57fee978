"""Client connection rules: slowloris, idle keep-alive, the connection cap, half-close."""

from __future__ import annotations

import asyncio

from agent.proxy import Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import Client, eventually, get, request, running_proxy


async def test_slow_request_head_is_cut_with_408() -> None:
    async with running_backend("a") as a, running_proxy(request_head_timeout=0.3) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        for _ in range(3):  # trickling bytes does not extend the deadline
            await asyncio.sleep(0.1)
            await client.send(b"X-A: b\r\n")
        response = await client.response()
        assert response.status == 408
        assert await client.closed()
        assert loop.time() - started < 2.0
        await client.close()
        # A connection that never sends a byte is closed too.
        silent = await Client.connect(proxy.http_port)
        assert await silent.closed(timeout=3.0)
        await silent.close()


async def test_idle_keep_alive_connections_close_after_the_timeout() -> None:
    async with running_backend("a") as a, running_proxy(keepalive_timeout=0.3) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/hello"))
        assert (await client.response()).status == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.closed(timeout=3.0)
        assert 0.2 < loop.time() - started < 2.0
        await client.close()


async def test_connections_over_the_cap_get_503() -> None:
    async with running_backend("a") as a, running_proxy(max_connections=3) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        held = [await Client.connect(proxy.http_port) for _ in range(3)]
        for client in held:
            await client.send(get("/hello"))
            assert (await client.response()).status == 200
        response, closed = await request(proxy.http_port, get("/hello"))
        assert response.status == 503 and closed
        await held[0].close()
        await eventually(lambda: True)
        await asyncio.sleep(0.1)
        response, _ = await request(proxy.http_port, get("/hello"))
        assert response.status == 200
        for client in held[1:]:
            await client.close()


async def test_half_closed_client_still_gets_its_response() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/sleep/100"))
        client.writer.write_eof()
        response = await client.response()
        assert (response.status, response.body) == (200, b"slept")
        assert await client.closed()
        await client.close()


async def test_client_that_does_not_read_is_cut_after_the_send_timeout() -> None:
    settings = {"send_timeout": 0.5, "upstream_read_timeout": 0.5}
    async with running_backend("a") as a, running_proxy(**settings) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get(f"/bytes/{64 * 1024 * 1024}"))
        await asyncio.sleep(1.5)  # never read
        await eventually(lambda: proxy.counters("app").in_flight == 0, timeout=5)
        assert proxy.counters("app").bytes_out < 32 * 1024 * 1024  # cut, not buffered
        await client.close()
        await eventually(lambda: a.open_connections == 0)
