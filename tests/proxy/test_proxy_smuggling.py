"""No request reaches an app without passing through the proxy's parser and headers.

The shapes: bytes sent right after an `Upgrade:` request head when the app refuses the
upgrade (answers 200 and keeps the connection), a request body still arriving after the
app has started answering, and a response with no framing. Each is tried against a real
upstream that keeps its connections alive, with a slow smuggled path, and with a second
client on another connection: were the upstream connection ever pooled out of step, that
client would receive the response meant for the smuggled request.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agent.proxy import Proxy, Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, Client, eventually, get, running_proxy

_UPGRADE_HEAD = (
    b"GET /hello HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
)


def _smuggled(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"


class NaiveUpstream:
    """An upstream that trusts its peer: it answers a head at once, reads no body, and
    parses whatever bytes come next as the next request (as sloppy app servers do).

    Paths: /early answers 401 before the body (its own body 300 ms later); /slow answers
    "smuggled" after 150 ms; /unframed answers with no framing and closes 200 ms later;
    anything else answers its own path.
    """

    def __init__(self) -> None:
        self.targets: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                self.targets.append(target)
                if not await self._answer(target, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, target: bytes, writer: asyncio.StreamWriter) -> bool:
        if target == b"/early":
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n")
            await asyncio.sleep(0.3)
            writer.write(b"nope!")
        elif target == b"/slow":
            await asyncio.sleep(0.15)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
        elif target == b"/unframed":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nunframed")
            await asyncio.sleep(0.2)
            return False
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
        await writer.drain()
        return True


@asynccontextmanager
async def naive_upstream() -> AsyncIterator[NaiveUpstream]:
    upstream = NaiveUpstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()


async def _connect(proxy: Proxy, tls: ssl.SSLContext | None) -> Client:
    if tls is None:
        return await Client.connect(proxy.http_port)
    assert proxy.https_port is not None
    return await Client.connect(proxy.https_port, tls=tls, server_hostname="app.test")


async def test_bytes_after_a_refused_upgrade_are_proxied_as_the_next_request() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(_UPGRADE_HEAD + _smuggled(b"/headers"))
        first = await client.response()
        assert (first.status, first.body) == (200, b"hello from a")
        second = await client.response()
        assert second.status == 200 and b'"/headers"' in second.body
        await client.close()
        assert [target for target, _ in a.seen] == ["/hello", "/headers"]
        for _, headers in a.seen:
            assert "x-request-id" in headers
            assert headers["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize("over_tls", [False, True], ids=["http", "https"])
async def test_a_refused_upgrade_never_hands_another_client_a_smuggled_response(
    over_tls: bool, authority: CertificateAuthority
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        tls = None
        if over_tls:
            proxy.certificates.put("app.test", *authority.issue("app.test"))
            tls = authority.client_context()
        for _ in range(15):
            attacker = await _connect(proxy, tls)
            await attacker.send(_UPGRADE_HEAD + _smuggled(b"/sleep/150"))
            assert (await attacker.response()).body == b"hello from a"
            victim = await _connect(proxy, tls)
            await victim.send(get("/hello"))
            response = await victim.response()
            assert (response.status, response.body) == (200, b"hello from a")
            await victim.close()
            await attacker.close()
        assert all("x-request-id" in headers for _, headers in a.seen)


async def test_bytes_after_an_upgrade_the_proxy_refused_itself_are_the_next_request(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(_UPGRADE_HEAD.replace(b"app.test", b"nope.test") + _smuggled(b"/headers"))
        assert (await client.response()).status == 404  # then closed: the head was not read
        assert await client.closed()
        await client.close()
        # A redirect keeps the connection: what followed the head is read as a request.
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        client = await Client.connect(proxy.http_port)
        await client.send(_UPGRADE_HEAD + _smuggled(b"/headers"))
        first, second = await client.response(), await client.response()
        assert (first.status, second.status) == (301, 301)
        assert (second.header("location") or "").endswith("/headers")
        await client.close()
        assert a.requests == 0


async def test_bytes_sent_early_reach_the_app_after_its_101() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\nearly frame"
        )
        assert (await client.response()).status == 101
        got = client._buffer
        while len(got) < len(b"early frame"):
            got += await asyncio.wait_for(client.reader.read(65536), 5)
        assert got == b"early frame"
        await client.close()


async def test_too_many_bytes_before_the_101_are_refused() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(
            b"GET /sleep/300 HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n" + b"x" * (65 * 1024)
        )
        response = await client.response()
        assert response.status == 400 and not response.keep_alive
        assert await client.closed()
        await client.close()


async def test_an_upgrade_request_with_a_body_is_refused() -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        client = await Client.connect(proxy.http_port)
        await client.send(
            b"POST /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"
        )
        assert (await client.response()).status == 400
        assert await client.closed()
        await client.close()
        assert a.requests == 0


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
async def test_a_body_still_arriving_after_an_early_answer_never_pools_the_connection(
    expect: bool,
) -> None:
    async with naive_upstream() as naive, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", naive.port)])
        body = _smuggled(b"/slow")
        attacker = await Client.connect(proxy.http_port)
        await attacker.send(
            b"POST /early HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n%s\r\n"
            % (len(body), b"Expect: 100-continue\r\n" if expect else b"")
        )
        await eventually(lambda: b"/early" in naive.targets)
        await asyncio.sleep(0.05)  # the app's early head is on its way to the client
        await attacker.send(body)
        assert (await attacker.response()).status == 401
        victim = await Client.connect(proxy.http_port)
        await victim.send(get("/mine"))
        response = await victim.response()
        assert (response.status, response.body) == (200, b"/mine")
        await victim.close()
        await attacker.close()


async def test_a_response_without_framing_is_never_pooled() -> None:
    async with naive_upstream() as naive, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", naive.port)])
        first = await Client.connect(proxy.http_port)
        await first.send(get("/unframed"))
        await eventually(lambda: b"/unframed" in naive.targets)
        second = await Client.connect(proxy.http_port)
        await second.send(get("/mine"))
        response = await second.response()
        assert response.body == b"/mine"
        unframed = await first.response()
        assert unframed.body == b"unframed" and not unframed.keep_alive
        assert naive.connections == 2
        await first.close()
        await second.close()
