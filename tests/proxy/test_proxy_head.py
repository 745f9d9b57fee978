"""Answers to HEAD carry no content (RFC 9110 section 9.3.2), on a keep-alive connection.

Every response the proxy makes itself (ACME challenge, doctor probe, redirect to HTTPS,
error pages) answers HEAD with exactly the head GET gets, Content-Length included, and
no body: a body there would be read as the start of the next response. The requests are
pipelined on one raw connection, HEAD then GET, and the GET's head must follow the HEAD's
byte for byte. Requests refused before an exchange (a bad Expect, no Host) get a head
only too, then the close.

From upstreams, the same holds: whatever an app sends after its answer to HEAD, after a
204 or a 304 is not forwarded, and the upstream connection that sent it is not used
again; interim answers (103) reach HTTP/1.1 clients as heads alone before the final one
(100 never does, and HTTP/1.0 clients get none).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agent.proxy import Proxy, RouteOptions, Upstream
from agent.proxy.probe import PREFIX as PROBE_PREFIX
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, Client, get, running_proxy
from tests.proxy.test_proxy_start import restoring_proxy

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@dataclass
class Kind:
    """One kind of answer the proxy makes: where to ask, what GET gets."""

    name: str
    host: str
    path: str
    status: int
    body: bytes | None = None  # None: any body (an HTML page)
    tls: bool = False
    head_path: str = ""  # HEAD asks here instead (a probe nonce is answered only once)


def head(path: str, host: str) -> bytes:
    return f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def read_head(client: Client) -> bytes:
    """The next response head, raw, as it arrived (nothing skipped)."""
    while b"\r\n\r\n" not in client._buffer:
        assert await client._fill(), f"closed before a head: {client._buffer[:200]!r}"
    end = client._buffer.index(b"\r\n\r\n") + 4
    raw, client._buffer = client._buffer[:end], client._buffer[end:]
    return raw


def content_length(raw_head: bytes) -> int:
    for line in raw_head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {raw_head!r}")


async def read_body(client: Client, length: int) -> bytes:
    while len(client._buffer) < length:
        assert await client._fill(), "closed inside a body"
    body, client._buffer = client._buffer[:length], client._buffer[length:]
    return body


async def check_on_one_connection(
    port: int, kinds: list[Kind], tls: ssl.SSLContext | None = None, sni: str = ""
) -> None:
    """For each kind in turn, on one connection: HEAD and GET pipelined; the HEAD's
    answer is the GET's head alone, and the GET's answer parses right after it."""
    client = await Client.connect(port, tls=tls, server_hostname=sni or None)
    try:
        for kind in kinds:
            await client.send(head(kind.head_path or kind.path, kind.host)
                              + get(kind.path, kind.host))
            head_answer = await read_head(client)
            get_head = await read_head(client)
            assert head_answer == get_head, (kind.name, head_answer, get_head)
            assert get_head.startswith(b"HTTP/1.1 %d " % kind.status), kind.name
            assert b"Connection: close" not in get_head, kind.name
            length = content_length(get_head)
            assert length > 0, kind.name
            body = await read_body(client, length)
            if kind.body is not None:
                assert body == kind.body, kind.name
        assert client._buffer == b"" and not await client.closed(timeout=0.2)
    finally:
        await client.close()


async def test_head_of_each_answer_the_proxy_makes_is_its_get_head_alone(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.set_route("down", ["down.test"], [], RouteOptions(https_redirect=False))
        proxy.set_route("other", ["other.test"], [Upstream("127.0.0.1", a.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        proxy.challenges.set(TOKEN, KEY_AUTHORIZATION)
        issued = proxy.probe_challenges(4)  # HEAD and GET each spend one
        probes = [PROBE_PREFIX.decode() + c.nonce for c in issued]
        proofs = [c.answer.encode() for c in issued]
        assert proxy.https_port is not None
        await check_on_one_connection(proxy.http_port, [
            Kind("challenge", "unknown.test", f"/.well-known/acme-challenge/{TOKEN}", 200,
                 KEY_AUTHORIZATION.encode()),
            Kind("unknown challenge", "app.test", "/.well-known/acme-challenge/nope", 404),
            Kind("probe", "127.0.0.1", probes[1], 200, proofs[1], head_path=probes[0]),
            Kind("redirect", "app.test", "/page?x=1", 301,
                 b'<a href="https://app.test:%d/page?x=1">moved</a>\n' % proxy.https_port),
            Kind("unknown host", "unknown.test", "/", 404),
            Kind("no running instance", "down.test", "/", 503),
        ])  # fmt: skip
        await check_on_one_connection(proxy.https_port, [
            Kind("probe over TLS", "app.test", probes[3], 200, proofs[3], head_path=probes[2]),
            Kind("another app than the SNI name", "other.test", "/", 421),
        ], tls=authority.client_context(), sni="app.test")  # fmt: skip
        assert a.requests == 0


async def test_head_while_routes_are_restored_gets_the_503_head_alone() -> None:
    async with restoring_proxy(restore_timeout=0.2) as proxy:
        await check_on_one_connection(proxy.http_port, [Kind("starting", "later.test", "/", 503)])


async def refused(proxy: Proxy, raw: bytes) -> bytes:
    """Everything the proxy sends back to `raw` before it closes the connection."""
    client = await Client.connect(proxy.http_port)
    try:
        await client.send(raw)
        while await client._fill():
            pass
        return client._buffer
    finally:
        await client.close()


async def test_a_refused_head_request_gets_a_head_only_then_the_close() -> None:
    async with running_proxy() as proxy:
        for raw, status in (
            (b"HEAD / HTTP/1.1\r\nHost: app.test\r\nExpect: later\r\n\r\n", 417),
            (b"HEAD / HTTP/1.1\r\n\r\n", 400),
            (b"HEAD / HTTP/1.1\r\nHost: app.test\r\nX: " + b"x" * 70000 + b"\r\n\r\n", 431),
        ):
            answer = await refused(proxy, raw)
            assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
            assert answer.endswith(b"\r\n\r\n") and answer.count(b"\r\n\r\n") == 1, answer
            assert content_length(answer) > 0 and b"Connection: close" in answer
        # The same refusals to GET carry the page.
        answer = await refused(proxy, b"GET / HTTP/1.1\r\n\r\n")
        assert len(answer) == answer.index(b"\r\n\r\n") + 4 + content_length(answer)


# Upstream answers without content ---------------------------------------------------------

_SCRIPT = {
    # An app that sends a body to HEAD, to 204 and to 304: none of it may reach the client.
    b"HEAD /head": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /204": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /304": b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5\r\n\r\nhello',
    # Interim answers before the real one: 103 reaches HTTP/1.1 clients, 100 never does
    # (the proxy answers Expect itself).
    b"GET /hints": b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    b"GET /ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


class ScriptedUpstream:
    """An upstream answering each request line from `_SCRIPT`, in one write."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request_head = await reader.readuntil(b"\r\n\r\n")
                writer.write(_SCRIPT[request_head.split(b" HTTP/", 1)[0]])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@asynccontextmanager
async def scripted_upstream() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    upstream.server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    try:
        yield upstream
    finally:
        upstream.server.close()
        await upstream.server.wait_closed()


async def read_ok(client: Client) -> None:
    """The answer to GET /ok, right where the next response must start."""
    ok = await read_head(client)
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n"), ok
    assert await read_body(client, content_length(ok)) == b"ok"


async def test_no_content_from_upstreams_reaches_the_client_after_head_204_304() -> None:
    async with scripted_upstream() as app, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", app.port)])
        client = await Client.connect(proxy.http_port)
        try:
            await client.send(get("/ok"))
            await read_ok(client)  # one pooled upstream connection, clean
            for request_line, status in ((b"HEAD /head", 200), (b"GET /204", 204),
                                         (b"GET /304", 304)):  # fmt: skip
                connections = app.connections
                await client.send(request_line + b" HTTP/1.1\r\nHost: app.test\r\n\r\n"
                                  + get("/ok"))  # fmt: skip
                answer = await read_head(client)
                assert answer.startswith(b"HTTP/1.1 %d " % status), answer
                await read_ok(client)
                # Bytes past the answer's end: that upstream connection was not reused,
                # /ok went on a new one (which the next request reuses).
                assert app.connections == connections + 1
            assert client._buffer == b"" and not await client.closed(timeout=0.2)
        finally:
            await client.close()


async def test_interim_answers_carry_no_body_and_the_final_one_follows() -> None:
    async with scripted_upstream() as app, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", app.port)])
        client = await Client.connect(proxy.http_port)
        try:
            await client.send(get("/hints") + get("/ok"))
            hints = await read_head(client)
            assert hints == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            final = await read_head(client)
            assert final.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await read_body(client, content_length(final)) == b"final"
            await read_ok(client)
            # HTTP/1.0 has no interim answers: the final one comes alone.
            await client.send(b"GET /hints HTTP/1.0\r\nHost: app.test\r\n"
                              b"Connection: keep-alive\r\n\r\n")  # fmt: skip
            final = await read_head(client)
            assert final.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await read_body(client, content_length(final)) == b"final"
        finally:
            await client.close()
