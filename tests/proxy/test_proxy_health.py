"""Passive health: a dead upstream leaves the rotation, is retried with backoff, comes back.

The pure parts (`Health`, `Route.pick`) are tried directly; the rest against real
upstreams: one stopped (connects refused) and one that accepts and resets at once (what
a published port whose container is gone can do), with keep-alive clients in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agent.proxy import RouteOptions, Upstream
from agent.proxy.health import Health
from agent.proxy.routes import Route, Tally, Target
from tests.proxy.backend import running_backend
from tests.proxy.conftest import Client, get, running_proxy


def test_health_backs_off_and_reports_each_change_once() -> None:
    health = Health()
    assert health.eligible(0.0) and not health.down
    assert health.failed(10.0, 0.5, 4.0) is True
    assert health.down and health.retry_at == 10.5 and not health.eligible(10.4)
    assert health.eligible(10.5)
    health.trying(10.5)  # one request tries it: the next waits
    assert not health.eligible(10.6)
    assert [health.failed(11.0, 0.5, 4.0) for _ in range(4)] == [False] * 4
    assert health.delay == 4.0  # 1, 2, 4, then capped
    assert health.succeeded() is True and not health.down
    assert health.succeeded() is False
    assert health.failed(20.0, 0.5, 4.0) is True and health.delay == 0.5


def test_pick_leaves_out_down_targets_while_another_is_up() -> None:
    up, dead = Target(Upstream("127.0.0.1", 1)), Target(Upstream("127.0.0.1", 2))
    route = Route("app", ("app.test",), (up, dead), RouteOptions(), Tally())
    dead.health.failed(0.0, 1.0, 8.0)
    assert {route.pick(0.5) for _ in range(10)} == {up}
    assert route.pick(0.5, avoid=(up,)) is dead  # the only one left is tried anyway
    picked = [route.pick(1.0) for _ in range(10)]
    assert picked.count(dead) <= 1  # due for a retry: one request tries it
    up.health.failed(1.0, 1.0, 8.0)
    assert route.pick(1.2) in (up, dead)  # all down: still try
    assert route.pick(2.0, avoid=(up, dead)) is None


async def _hammer(port: int, clients: int, each: int) -> list[int]:
    """`clients` keep-alive connections sending `each` GETs; the statuses (0: no answer)."""

    async def one() -> list[int]:
        statuses = []
        client = await Client.connect(port)
        for _ in range(each):
            try:
                await client.send(get("/hello"))
                response = await client.response()
                statuses.append(response.status)
                if not response.keep_alive:
                    await client.close()
                    client = await Client.connect(port)
            except ConnectionError:
                statuses.append(0)
                client = await Client.connect(port)
        await client.close()
        return statuses

    results = await asyncio.gather(*(one() for _ in range(clients)))
    return [status for statuses in results for status in statuses]


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


async def test_a_dead_instance_fails_no_request_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agent.proxy")
    async with (
        running_backend("a") as a,
        running_backend("b") as b,
        running_proxy(upstream_retry_backoff=0.2, upstream_retry_max=0.4) as proxy,
    ):
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", a.port), Upstream("127.0.0.1", b.port)]
        )
        assert set(await _hammer(proxy.http_port, 4, 10)) == {200}  # warm pools to both
        port = b.port
        await b.stop()
        served_before = a.requests
        statuses = await _hammer(proxy.http_port, 4, 100)
        assert statuses == [200] * 400
        assert a.requests - served_before == 400
        assert _lines(caplog, "upstream down") == 1
        # While down, b is tried about once per backoff, not on every one of the 400.
        assert proxy.counters("app").upstream_errors < 100  # without passive health: about 200
        await b.start(port)
        served_by_b = b.requests
        for _ in range(40):  # b gets traffic again once a request tries it
            await _hammer(proxy.http_port, 2, 5)
            if b.requests > served_by_b:
                break
            await asyncio.sleep(0.1)
        assert b.requests > served_by_b
        assert _lines(caplog, "upstream up") == 1
        assert _lines(caplog, "upstream down") == 1


@asynccontextmanager
async def resetting_upstream() -> AsyncIterator[int]:
    """Accepts every connection and resets it at once; yields its port."""

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_idempotent_requests_reset_before_any_answer_go_to_another_instance() -> None:
    async with (
        running_backend("a") as a,
        resetting_upstream() as dead_port,
        running_proxy(upstream_retry_backoff=0.05, upstream_retry_max=0.1) as proxy,
    ):
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", dead_port), Upstream("127.0.0.1", a.port)]
        )
        statuses = await _hammer(proxy.http_port, 4, 50)
        assert statuses == [200] * 200
        # A POST with a body that reached the failing instance is not replayed.
        client = await Client.connect(proxy.http_port)
        posts = []
        for _ in range(20):
            await client.send(
                b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\n\r\nhi"
            )
            response = await client.response()
            posts.append(response.status)
            if not response.keep_alive:
                await client.close()
                client = await Client.connect(proxy.http_port)
            await asyncio.sleep(0.02)
        await client.close()
        assert set(posts) <= {200, 502}
