"""End to end through a running Proxy: routing, forwarding, keep-alive, bodies, upgrades."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl

import pytest

from agent.proxy import HostTaken, InvalidHost, Proxy, RouteNotFound, RouteOptions, Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import (
    CertificateAuthority,
    Client,
    eventually,
    get,
    request,
    running_proxy,
)


async def test_routes_by_host_exact_and_wildcard() -> None:
    async with running_backend("a") as a, running_backend("b") as b, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.set_route("wild", ["*.wild.test"], [Upstream("127.0.0.1", b.port)])
        response, _ = await request(proxy.http_port, get("/hello", "app.test"))
        assert (response.status, response.body) == (200, b"hello from a")
        response, _ = await request(proxy.http_port, get("/hello", "Deep.Wild.TEST.:8080"))
        assert response.body == b"hello from b"
        response, _ = await request(proxy.http_port, get("/hello", "wild.test"))
        assert response.status == 404
        assert b"No app is served" in response.body
        response, _ = await request(proxy.http_port, get("/hello", "x.y.wild.test"))
        assert response.status == 404


async def test_host_conflicts_and_bad_names_change_nothing() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        upstream = [Upstream("127.0.0.1", a.port)]
        proxy.set_route("one", ["one.test"], upstream)
        with pytest.raises(HostTaken):
            proxy.set_route("two", ["two.test", "one.test"], upstream)
        response, _ = await request(proxy.http_port, get("/hello", "two.test"))
        assert response.status == 404  # nothing of the refused route was applied
        with pytest.raises(InvalidHost):
            proxy.set_route("three", ["Bad Host"], upstream)
        with pytest.raises(RouteNotFound):
            proxy.counters("nope")
        with pytest.raises(RouteNotFound):
            await proxy.swap("nope", upstream, 1.0)


async def test_keep_alive_on_both_sides_reuses_one_upstream_connection() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        for _ in range(20):
            await client.send(get("/hello"))
            response = await client.response()
            assert response.status == 200 and response.keep_alive
        await client.close()
        assert a.requests == 20
        assert a.connections == 1


async def test_forwarded_headers_are_set_and_untrusted_ones_dropped() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        extra = (
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\n"
            "X-Request-ID: forged\r\nForwarded: for=6.6.6.6\r\nConnection: keep-alive, X-Hop\r\n"
            "X-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
            "TE: trailers\r\nX-Custom: kept\r\n"
        )
        response, _ = await request(proxy.http_port, get("/headers", "app.test:8080", extra))
        seen = json.loads(response.body)
        headers = {k.lower(): v for k, v in seen["headers"]}
        assert headers["host"] == "app.test:8080"
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-real-ip"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-host"] == "app.test:8080"
        assert len(headers["x-request-id"]) == 32 and headers["x-request-id"] != "forged"
        assert headers["x-custom"] == "kept"
        for hop in ("forwarded", "x-hop", "keep-alive", "proxy-connection", "te", "connection"):
            assert hop not in headers, hop


async def test_forwarded_headers_from_a_trusted_proxy_are_kept() -> None:
    async with running_backend("a") as a, running_proxy(trusted_proxies=("127.0.0.0/8",)) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        extra = (
            "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: www.example.com\r\nX-Request-ID: abc123\r\n"
        )
        response, _ = await request(proxy.http_port, get("/headers", extra=extra))
        headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-host"] == "www.example.com"
        assert headers["x-request-id"] == "abc123"
        assert headers["x-real-ip"] == "203.0.113.9"


async def test_absolute_form_target_routes_by_its_authority() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        raw = b"GET http://app.test/headers?x=1 HTTP/1.1\r\nHost: other.test\r\n\r\n"
        response, _ = await request(proxy.http_port, raw)
        seen = json.loads(response.body)
        assert seen["target"] == "/headers?x=1"
        assert ["Host", "app.test"] in seen["headers"] or ["host", "app.test"] in seen["headers"]


async def test_request_bodies_stream_with_content_length_and_chunked() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        body = bytes(range(256)) * 4096  # 1 MiB
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        await client.send(body)
        response = await client.response()
        assert response.status == 200 and response.body == body
        chunks = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
        )
        response = await client.response()
        assert response.body == b"hello world"
        await client.close()
        counters = proxy.counters("app")
        assert counters.bytes_in == len(body) + 11
        assert counters.status_2xx == 2


async def test_large_download_streams_with_backpressure() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        size = 32 * 1024 * 1024
        client = await Client.connect(proxy.http_port)
        await client.send(get(f"/bytes/{size}"))
        await asyncio.sleep(0.5)  # a client that does not read: the proxy must not buffer it all
        await client._fill()
        head_end = client._buffer.index(b"\r\n\r\n") + 4
        received = len(client._buffer) - head_end
        while received < size:
            data = await client.reader.read(1 << 20)
            assert data
            received += len(data)
        assert received == size
        await client.close()


async def test_head_204_304_have_no_body_and_keep_the_connection() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        response = await client.response(head=True)
        assert response.status == 200 and response.header("content-length") == "1000"
        for status in (204, 304):
            await client.send(get(f"/status/{status}"))
            response = await client.response()
            assert response.status == status and response.body == b""
        await client.send(get("/hello"))
        assert (await client.response()).body == b"hello from a"
        await client.close()


async def test_server_sent_events_arrive_unbuffered() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/chunks/3/400"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        while b"data: 0" not in client._buffer:
            await client._fill()
        assert loop.time() - started < 0.3  # the first event is not held back
        assert b"data: 2" not in client._buffer
        await client.close()


async def test_expect_100_continue() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        line = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert line == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        response = await client.response()
        assert (response.status, response.body) == (200, b"hello")
        await client.close()


async def test_expect_100_continue_over_the_limit_gets_413_without_continue() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", a.port)], RouteOptions(max_body_bytes=10)
        )
        raw = (
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        response, closed = await request(proxy.http_port, raw)
        assert response.status == 413 and closed
        assert a.requests == 0


async def test_websocket_upgrade_becomes_a_tunnel() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        response = await client.response()
        assert response.status == 101
        assert (response.header("upgrade") or "").lower() == "websocket"
        for message in (b"ping", b"\x00\xff binary", b"x" * 100_000):
            await client.send(message)
            got = client.take_buffered()
            while len(got) < len(message):
                got += await asyncio.wait_for(client.reader.read(1 << 20), 5)
            assert got == message
        await client.close()
        await eventually(lambda: a.open_connections == 0)


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/sleep/200") + get("/hello", "nope.test") + get("/hello"))
        first = await client.response()
        second = await client.response()
        third = await client.response()
        assert (first.status, first.body) == (200, b"slept")
        assert second.status == 404
        assert third.body == b"hello from a"
        await client.close()


async def test_http_1_0_client_gets_a_dechunked_body_then_close() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(b"GET /chunks/3/1 HTTP/1.0\r\nHost: app.test\r\n\r\n")
        assert await client.closed() is True
        raw = client._buffer
        await client.close()
        # `closed()` drained the rest: reread through a fresh request instead.
        response, closed = await request(
            proxy.http_port, b"GET /chunks/3/1 HTTP/1.0\r\nHost: app.test\r\n\r\n"
        )
        assert response.header("transfer-encoding") is None
        assert response.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert closed
        del raw


async def test_upstream_connection_close_is_honoured() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        for _ in range(3):
            await client.send(get("/close"))
            response = await client.response()
            assert response.body == b"bye" and response.keep_alive
        await client.close()
        assert a.connections == 3


async def test_least_in_flight_balancing_spreads_concurrent_requests() -> None:
    async with running_backend("a") as a, running_backend("b") as b, running_proxy() as proxy:
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", a.port), Upstream("127.0.0.1", b.port)]
        )
        results = await asyncio.gather(
            *(request(proxy.http_port, get("/sleep/300")) for _ in range(10))
        )
        assert all(r.status == 200 for r, _ in results)
        assert a.requests == 5 and b.requests == 5


async def test_counters_and_access_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    async with running_backend("a") as a:
        proxy = Proxy(
            __import__("tests.proxy.conftest", fromlist=["TEST_SETTINGS"]).TEST_SETTINGS,
            access_log=logger,
        )
        await proxy.start()
        try:
            proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
            with caplog.at_level(logging.INFO, logger="test.access"):
                await request(proxy.http_port, get("/hello?q=1"))
                await request(proxy.http_port, get("/status/503"))
            counters = proxy.counters("app")
            assert counters.requests == 2
            assert counters.status_2xx == 1 and counters.status_5xx == 1
            assert counters.in_flight == 0
            assert counters.bytes_out > 0
        finally:
            await proxy.stop(1.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.access"]
    assert len(lines) == 2
    line = lines[0]
    for part in (
        "host=app.test", "method=GET", "path=/hello?q=1", "status=200", "bytes=",
        "duration_ms=", "client=127.0.0.1", f"upstream=127.0.0.1:{a.port}", "request_id=",
    ):  # fmt: skip
        assert part in line, part
    assert line[:4].isdigit()  # starts with the time


async def test_graceful_stop_lets_in_flight_requests_finish() -> None:
    async with running_backend("a") as a:
        proxy = Proxy(__import__("tests.proxy.conftest", fromlist=["x"]).TEST_SETTINGS)
        await proxy.start()
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        port = proxy.http_port
        idle = await Client.connect(port)
        slow = asyncio.ensure_future(request(port, get("/sleep/500")))
        await eventually(lambda: proxy.counters("app").in_flight == 1)
        await proxy.stop(5.0)
        response, _ = await slow
        assert response.status == 200 and response.body == b"slept"
        assert response.header("connection") == "close"
        assert await idle.closed()
        await idle.close()
        with pytest.raises(OSError):
            await Client.connect(port)


async def test_stop_answers_an_idle_keep_alive_connection_once_more() -> None:
    """A client between two requests when the proxy stops (an agent restart) gets its
    next request answered, with `Connection: close`, instead of a reset."""
    from agent.proxy import ProxySettings

    settings = ProxySettings(listen="127.0.0.1", http_port=0, https_port=None,
                             shutdown_idle_timeout=5.0)
    async with running_backend("a") as a:
        proxy = Proxy(settings)
        await proxy.start()
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/hello"))
        assert (await client.response()).keep_alive
        stopping = asyncio.ensure_future(proxy.stop(10.0))
        await asyncio.sleep(0.3)
        assert not stopping.done()
        await client.send(get("/hello"))
        response = await client.response()
        assert (response.status, response.body) == (200, b"hello from a")
        assert response.header("connection") == "close"
        assert await client.closed()
        await client.close()
        await asyncio.wait_for(stopping, 3.0)  # done once its last connection closed


async def test_stop_keeps_the_keep_alive_a_response_already_promised() -> None:
    """A response whose head said keep-alive before the proxy began stopping leaves the
    connection open for the request the client will send next."""
    from agent.proxy import ProxySettings

    settings = ProxySettings(listen="127.0.0.1", http_port=0, https_port=None,
                             shutdown_idle_timeout=5.0)
    async with running_backend("a") as a:
        proxy = Proxy(settings)
        await proxy.start()
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/chunks/3/200"))
        await eventually(lambda: proxy.counters("app").in_flight == 1)
        await asyncio.sleep(0.1)  # the head is out, the body still streaming
        stopping = asyncio.ensure_future(proxy.stop(10.0))
        streamed = await client.response()
        assert streamed.status == 200 and streamed.keep_alive
        await client.send(get("/hello"))
        response = await client.response()
        assert (response.status, response.body) == (200, b"hello from a")
        assert response.header("connection") == "close"
        await client.close()
        await asyncio.wait_for(stopping, 3.0)


async def test_stop_serves_a_tls_connection_accepted_before_its_client_hello(
    authority: CertificateAuthority,
) -> None:
    """A TLS client whose connection was accepted but whose ClientHello had not come yet
    when the proxy began stopping is still handshaken and answered."""
    from agent.proxy import ProxySettings

    settings = ProxySettings(listen="127.0.0.1", http_port=0, https_port=0,
                             shutdown_idle_timeout=5.0)
    async with running_backend("a") as a:
        proxy = Proxy(settings)
        await proxy.start()
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)],
                        RouteOptions(https_redirect=False))
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        assert proxy.https_port is not None
        raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
        await asyncio.sleep(0.2)  # accepted, waiting for its ClientHello
        stopping = asyncio.ensure_future(proxy.stop(10.0))
        await asyncio.sleep(0.2)
        answer = await asyncio.to_thread(_tls_get, raw, authority.client_context())
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello from a")
        await asyncio.wait_for(stopping, 5.0)


def _tls_get(raw: socket.socket, context: ssl.SSLContext) -> bytes:
    with context.wrap_socket(raw, server_hostname="app.test") as tls:
        tls.sendall(b"GET /hello HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


async def test_a_flood_of_pipelined_requests_is_answered_in_part_then_closed() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(get("/hello") * 1000)
        answered = 0
        while True:
            try:
                response = await client.response()
            except ConnectionError:
                break
            assert response.body == b"hello from a"
            answered += 1
            if not response.keep_alive:
                break
        assert 1 <= answered <= 20
        assert await client.closed()
        await client.close()
        assert a.requests == answered


async def test_lifecycle_errors_are_berth_errors() -> None:
    from agent.proxy import ProxyAlreadyRunning, ProxyNotRunning, ProxySettings

    proxy = Proxy(ProxySettings(listen="127.0.0.1", http_port=0, https_port=None))
    with pytest.raises(ProxyNotRunning):
        _ = proxy.http_port
    await proxy.start()
    try:
        assert proxy.https_port is None
        with pytest.raises(ProxyAlreadyRunning):
            await proxy.start()
    finally:
        await proxy.stop(1.0)
    await proxy.stop(1.0)  # stopping twice is harmless


async def test_request_body_backpressure_from_an_upstream_that_does_not_read() -> None:
    """The upstream takes the head, then reads nothing: the client is made to wait
    (its writes stop draining) instead of the proxy buffering the body."""
    reading = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reading.wait()  # never reads the body until the test says so
        writer.close()

    server = await asyncio.start_server(stalled, "127.0.0.1", 0, limit=1024)
    try:
        async with running_proxy() as proxy:
            port = server.sockets[0].getsockname()[1]
            options = RouteOptions(max_body_bytes=1 << 30)
            proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", port)], options)
            client = await Client.connect(proxy.http_port)
            size = 512 * 1024 * 1024
            await client.send(
                b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % size
            )
            block = b"x" * 65536
            sent = 0
            while sent < size:
                client.writer.write(block)
                try:
                    await asyncio.wait_for(client.writer.drain(), 1.0)
                except TimeoutError:
                    break
                sent += len(block)
            assert sent < 64 * 1024 * 1024  # socket buffers and a bounded proxy buffer
            assert proxy.counters("app").bytes_in > 0  # the body was flowing, not refused
            assert proxy.counters("app").bytes_in < 64 * 1024 * 1024
            reading.set()
            client.writer.transport.abort()
            await client.close()
    finally:
        server.close()
        await server.wait_closed()
