"""At start the proxy never answers from an empty route table.

Started with `restoring=True` (as the agent starts it) it holds its sockets without
accepting until told its routes are back; connections made meanwhile wait in the backlog
and are answered from the restored routes. Past `restore_timeout` it accepts anyway and
answers hosts it does not know yet with 503 and Retry-After, never 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from agent.proxy import Proxy, RouteOptions, Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import TEST_SETTINGS, CertificateAuthority, Client, get, request


@asynccontextmanager
async def restoring_proxy(**overrides: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy(replace(TEST_SETTINGS, **overrides))
    await proxy.start(restoring=True)
    try:
        yield proxy
    finally:
        await proxy.stop(2.0)


async def test_requests_made_before_the_routes_are_back_wait_for_them(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, restoring_proxy() as proxy:
        assert proxy.https_port is not None
        plain = await Client.connect(proxy.http_port)  # the backlog takes it
        await plain.send(get("/hello"))
        tls = asyncio.ensure_future(
            request(proxy.https_port, get("/hello"), tls=authority.client_context(),
                    server_hostname="app.test")
        )  # fmt: skip
        await asyncio.sleep(0.3)
        assert plain._buffer == b"" and not plain.reader.at_eof() and not tls.done()
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", a.port)], RouteOptions(https_redirect=False)
        )
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        await proxy.routes_restored()
        response = await plain.response()
        assert (response.status, response.body) == (200, b"hello from a")
        response, _ = await tls
        assert (response.status, response.body) == (200, b"hello from a")
        await plain.close()
        response, _ = await request(proxy.http_port, get("/hello", "other.test"))
        assert response.status == 404


async def test_past_the_restore_timeout_unknown_hosts_get_503_with_retry_after() -> None:
    async with running_backend("a") as a, restoring_proxy(restore_timeout=0.2) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        response, _ = await request(proxy.http_port, get("/hello", "later.test"))
        assert response.status == 503 and response.header("retry-after") == "1"
        response, _ = await request(proxy.http_port, get("/hello"))
        assert response.body == b"hello from a"
        response, _ = await request(
            proxy.http_port, b"HEAD / HTTP/1.1\r\nHost: later.test\r\n\r\n", head=True
        )
        assert response.status == 503 and response.body == b""
        await proxy.routes_restored()
        response, _ = await request(proxy.http_port, get("/hello", "later.test"))
        assert response.status == 404
