"""Request heads, sans-io (bytes fed to a RequestReader) and end to end (exact statuses)."""

from __future__ import annotations

import asyncio

import pytest

from agent.proxy import RouteOptions, Upstream
from agent.proxy.request_head import (
    Rejected,
    RequestHead,
    RequestReader,
    upstream_request_head,
)
from tests.proxy.backend import running_backend
from tests.proxy.conftest import Client, get, request, running_proxy


class Sink:
    def __init__(self) -> None:
        self.heads: list[RequestHead] = []
        self.body = b""
        self.ends = 0

    def request_head(self, head: RequestHead) -> None:
        self.heads.append(head)

    def request_body(self, data: bytes) -> None:
        self.body += bytes(data)

    def request_end(self) -> None:
        self.ends += 1


def reader(sink: Sink, trusted: bool = False) -> RequestReader:
    return RequestReader(
        sink, trusted=trusted, max_request_line=100, max_header_bytes=400, max_headers=10,
        host_cache={},
    )  # fmt: skip


def status_of(data: bytes) -> int:
    with pytest.raises(Rejected) as caught:
        reader(Sink()).feed(data)
    return caught.value.status


SMUGGLING = {
    "content-length and transfer-encoding": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding and content-length": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "two content-lengths": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "content-length list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
    "coding not ending in chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "unknown coding": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    "invalid chunk size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "negative chunk size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    "chunk longer than its size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "whitespace before colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n",
    "NUL in a header": b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x00c\r\n\r\n",
    "bare CR in a header": b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n",
    "bare LF line ends": b"GET / HTTP/1.1\nHost: a\n\n",
    "missing host": b"GET / HTTP/1.1\r\n\r\n",
    "empty host": b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "malformed host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host with userinfo": b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "lowercase method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "relative target": b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_malformed_and_smuggling_shapes_are_400(data: bytes) -> None:
    assert status_of(data) == 400


def test_limits_and_unsupported_features_have_their_statuses() -> None:
    assert status_of(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n") == 414
    assert status_of(b"GET /" + b"a" * 200) == 414  # still arriving
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 500 + b"\r\n\r\n") == 431
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 5000) == 431  # still arriving
    many = b"".join(b"X-%d: y\r\n" % i for i in range(11))
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n") == 431
    assert status_of(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505
    assert status_of(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n") == 405
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n") == 417
    assert (
        status_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501
    )


def test_a_head_in_pieces_is_collected_and_hop_by_hop_headers_removed() -> None:
    sink = Sink()
    data = (
        b"POST /p?q=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nConnection: keep-alive, X-Hop\r\n"
        b"X-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nTransfer-Encoding: chunked\r\n"
        b"Accept: */*\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    r = reader(sink)
    for i in range(len(data)):
        assert r.feed(data[i : i + 1]) is None
    (head,) = sink.heads
    assert head.method == b"POST" and head.target == b"/p?q=1"
    assert head.host == "example.com" and head.host_header == b"Example.COM:8080"
    assert head.lines == [b"Accept: */*\r\n"]
    assert head.chunked and head.keep_alive
    assert head.forwarded_for is None  # untrusted peer
    assert sink.body == b"abc" and sink.ends == 1
    rendered = upstream_request_head(head, b"X-Forwarded-For: 9.9.9.9\r\n")
    assert rendered == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n"
        b"Transfer-Encoding: chunked\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n"
    )


def test_upgrade_returns_the_offset_of_the_tunnelled_bytes() -> None:
    sink = Sink()
    data = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nRAW"
    offset = reader(sink).feed(data)
    assert offset is not None and data[offset:] == b"RAW"
    assert sink.heads[0].upgrade == b"websocket"


def test_http_1_0_keep_alive_and_close() -> None:
    sink = Sink()
    r = reader(sink)
    r.feed(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    r.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [h.keep_alive for h in sink.heads] == [True, False]


# End to end: the exact status, then the connection closes. -------------------------


@pytest.mark.parametrize("case", SMUGGLING.keys())
async def test_proxy_answers_400_and_closes(case: str) -> None:
    data = SMUGGLING[case]
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["a"], [Upstream("127.0.0.1", a.port)])
        response, closed = await request(proxy.http_port, data)
        assert response.status == 400
        assert response.header("connection") == "close"
        assert closed
        if "chunk" not in case:  # a broken body is seen only after the head went upstream
            assert a.requests == 0


async def test_proxy_limits_end_to_end() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        port = proxy.http_port
        cases = [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: app.test\r\n\r\n", 414),
            (get("/", extra="X-Big: " + "b" * 33000 + "\r\n"), 431),
            (get("/", extra="".join(f"X-{i}: {'v' * 400}\r\n" for i in range(90))), 431),
            (b"GET / HTTP/1.1\r\nHost: app.test\r\nX: " + b"b" * 40000, 431),
        ]
        for data, status in cases:
            response, closed = await request(port, data)
            assert (response.status, closed) == (status, True)
        # Under the limits, the same shapes pass.
        response, _ = await request(port, get("/hello", extra="X-Big: " + "b" * 30000 + "\r\n"))
        assert response.status == 200


async def test_body_over_the_apps_limit_is_413_without_reading_it_all() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        options = RouteOptions(max_body_bytes=1000)
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)], options)
        port = proxy.http_port
        declared = b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000000\r\n\r\n"
        response, closed = await request(port, declared + b"x" * 5000)
        assert (response.status, closed) == (413, True)
        # Chunked: the limit is noticed as the body streams, then the proxy stops reading.
        client = await Client.connect(port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        try:
            for _ in range(200):
                await client.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
                sent += 1024
        except ConnectionError:
            pass
        response = await client.response()
        assert response.status in (200, 413)  # the echo may have started streaming first
        if response.status == 413:
            assert response.header("connection") == "close"
        assert await client.closed()
        await client.close()
        assert proxy.counters("app").bytes_in <= 1000 + 64 * 1024


async def test_error_pages_for_unknown_host_no_upstream_refused_and_reset() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        port = proxy.http_port
        response, closed = await request(port, get("/", "unknown.test"))
        assert response.status == 404 and not closed
        assert response.header("content-type") == "text/html; charset=utf-8"
        proxy.set_route("empty", ["empty.test"], [])
        response, _ = await request(port, get("/", "empty.test"))
        assert response.status == 503 and b"no running instance" in response.body
        # A port nobody listens on: refused.
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        dead_port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        proxy.set_route("dead", ["dead.test"], [Upstream("127.0.0.1", dead_port)])
        response, _ = await request(port, get("/", "dead.test"))
        assert response.status == 502
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        response, _ = await request(port, get("/drop"))
        assert response.status == 502
        assert proxy.counters("dead").upstream_errors == 1
        assert proxy.counters("app").upstream_errors == 1
        # Refused on one upstream of two: the request goes to the other.
        proxy.set_route(
            "dead", ["dead.test"], [Upstream("127.0.0.1", dead_port), Upstream("127.0.0.1", a.port)]
        )
        for _ in range(4):
            response, _ = await request(port, get("/hello", "dead.test"))
            assert response.status == 200


async def test_upstream_without_a_response_head_in_time_is_504() -> None:
    async with running_backend("a") as a, running_proxy(upstream_response_timeout=0.3) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        loop = asyncio.get_running_loop()
        started = loop.time()
        response, _ = await request(proxy.http_port, get("/sleep/3000"))
        assert response.status == 504
        assert loop.time() - started < 2.0
        assert proxy.counters("app").status_5xx == 1


async def test_broken_upstream_responses_are_502() -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    try:
        async with running_proxy() as proxy:
            port = server.sockets[0].getsockname()[1]
            proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", port)])
            response, _ = await request(proxy.http_port, get("/"))
            assert response.status == 502
    finally:
        server.close()
        await server.wait_closed()
