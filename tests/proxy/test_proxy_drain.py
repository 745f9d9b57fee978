"""Atomic swaps and drains: in-flight finishes, idle and upgraded connections close,
stragglers get 504, nothing new reaches the old upstream, zero failures under load."""

from __future__ import annotations

import asyncio
import random

import pytest

from agent.proxy import Upstream
from tests.proxy.backend import Backend, running_backend
from tests.proxy.conftest import Client, eventually, get, request, running_proxy


def upstream(backend: Backend) -> Upstream:
    return Upstream("127.0.0.1", backend.port)


async def test_swap_waits_for_in_flight_requests_then_returns() -> None:
    async with running_backend("old") as old, running_backend("new") as new:
        async with running_proxy() as proxy:
            proxy.set_route("app", ["app.test"], [upstream(old)])
            # Two concurrent requests leave two pooled connections; the slow one takes one.
            await asyncio.gather(*(request(proxy.http_port, get("/sleep/50")) for _ in range(2)))
            slow = asyncio.ensure_future(request(proxy.http_port, get("/sleep/500")))
            await eventually(lambda: proxy.counters("app").in_flight == 1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            report = await proxy.swap("app", [upstream(new)], drain_timeout=5.0)
            assert loop.time() - started >= 0.3
            assert (report.completed, report.timed_out, report.idle_closed) == (1, 0, 1)
            assert report.upstreams == (upstream(old),)
            response, _ = await slow
            assert response.body == b"slept"
            await eventually(lambda: old.open_connections == 0)
            served = old.requests
            for _ in range(5):
                response, _ = await request(proxy.http_port, get("/hello"))
                assert response.body == b"hello from new"
            assert old.requests == served


async def test_stragglers_past_the_deadline_get_504() -> None:
    async with running_backend("old") as old, running_backend("new") as new:
        async with running_proxy() as proxy:
            proxy.set_route("app", ["app.test"], [upstream(old)])
            slow = asyncio.ensure_future(request(proxy.http_port, get("/sleep/5000")))
            streaming = await Client.connect(proxy.http_port)
            await streaming.send(get("/chunks/100/100"))
            await eventually(lambda: proxy.counters("app").in_flight == 2)
            await asyncio.sleep(0.2)
            report = await proxy.swap("app", [upstream(new)], drain_timeout=0.3)
            assert report.timed_out == 2
            response, _ = await slow
            assert response.status == 504
            # The stream had started: it is cut, the client sees the connection end.
            assert await streaming.closed()
            await streaming.close()


async def test_upgraded_connections_on_the_old_upstream_are_closed() -> None:
    async with running_backend("old") as old, running_backend("new") as new:
        async with running_proxy() as proxy:
            proxy.set_route("app", ["app.test"], [upstream(old)])
            client = await Client.connect(proxy.http_port)
            await client.send(
                b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            assert (await client.response()).status == 101
            report = await proxy.swap("app", [upstream(new)], drain_timeout=5.0)
            assert report.tunnels_closed == 1 and report.seconds < 1.0
            assert await client.closed()
            await client.close()


async def test_set_route_drains_dropped_upstreams_and_remove_route_answers_404() -> None:
    async with running_backend("old") as old, running_backend("new") as new:
        async with running_proxy(drain_timeout=5.0) as proxy:
            proxy.set_route("app", ["app.test"], [upstream(old)])
            slow = asyncio.ensure_future(request(proxy.http_port, get("/sleep/300")))
            await eventually(lambda: proxy.counters("app").in_flight == 1)
            proxy.set_route("app", ["app.test"], [upstream(new)])
            response, _ = await request(proxy.http_port, get("/hello"))
            assert response.body == b"hello from new"
            assert (await slow)[0].body == b"slept"
            slow = asyncio.ensure_future(request(proxy.http_port, get("/sleep/300")))
            await eventually(lambda: proxy.counters("app").in_flight == 1)
            await proxy.remove_route("app", drain_timeout=5.0)
            assert (await slow)[0].status == 200
            response, _ = await request(proxy.http_port, get("/hello"))
            assert response.status == 404


class Load:
    """Keep-alive clients looping over small GETs, bodies and a slow stream; counts failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = False
        self.slow_streams = 0

    async def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        client = await Client.connect(self.port)
        try:
            while not self.stopping:
                kind = rng.random()
                try:
                    if kind < 0.5:
                        await client.send(get("/hello"))
                        response = await client.response()
                        ok = response.status == 200 and response.body.startswith(b"hello from")
                    elif kind < 0.8:
                        body = rng.randbytes(rng.randint(1, 200_000))
                        await client.send(
                            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
                            % len(body)
                            + body
                        )
                        response = await client.response()
                        ok = response.status == 200 and response.body == body
                    else:
                        await client.send(get("/chunks/5/40"))
                        response = await client.response()
                        ok = response.status == 200 and response.body.count(b"data:") == 5
                except (TimeoutError, ConnectionError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    await client.close()
                    client = await Client.connect(self.port)
                    continue
                if ok:
                    self.ok += 1
                else:
                    self.failures.append(f"status {response.status}: {response.body[:80]!r}")
                if not response.keep_alive:
                    await client.close()
                    client = await Client.connect(self.port)
        finally:
            await client.close()

    async def slow_stream(self) -> None:
        """Slow streaming responses (0.6 s each) in flight across the swaps: each swap's
        drain waits for the one on the old upstream (its timeout fits it)."""
        while not self.stopping:
            response, _ = await request(self.port, get("/chunks/20/30"))
            if response.status == 200 and response.body.count(b"data:") == 20:
                self.slow_streams += 1
            else:
                self.failures.append(f"slow stream: {response.status} {len(response.body)}")


@pytest.mark.slow
async def test_zero_failed_requests_across_20_swaps() -> None:
    backends = [Backend("blue"), Backend("green")]
    for backend in backends:
        await backend.start()
    try:
        async with running_proxy() as proxy:
            proxy.set_route("app", ["app.test"], [upstream(backends[0])])
            load = Load(proxy.http_port)
            tasks = [asyncio.ensure_future(load.worker(i)) for i in range(6)]
            tasks.append(asyncio.ensure_future(load.slow_stream()))
            await asyncio.sleep(0.3)
            for swap in range(20):
                current, spare = backends[swap % 2], backends[(swap + 1) % 2]
                report = await proxy.swap("app", [upstream(spare)], drain_timeout=5.0)
                assert report.timed_out == 0
                # Like a deploy: the old instance stops once the swap returns, and a fresh
                # one (new port) is started for the next swap.
                served = current.requests
                await current.stop()
                replacement = Backend(current.name)
                await replacement.start()
                backends[swap % 2] = replacement
                assert current.requests == served
                await asyncio.sleep(0.15)
            load.stopping = True
            await asyncio.gather(*tasks)
            counters = proxy.counters("app")
    finally:
        for backend in backends:
            await backend.stop()
    assert load.failures == []
    assert load.ok > 200
    assert load.slow_streams >= 1
    assert counters.status_5xx == 0 and counters.upstream_errors == 0
