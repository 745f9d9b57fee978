"""berth doctor's probe: answered over HTTP and HTTPS, for any host (an address, an app's
domain, a host with no route), before routing and redirects, only with this proxy's token;
everything else under its prefix is a plain 404, and the app's own /.well-known/ paths
still reach it."""

from __future__ import annotations

from agent.proxy import Upstream
from agent.proxy.probe import PREFIX, ProbeToken, proof
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, get, request, running_proxy


async def test_the_probe_is_answered_with_the_proof_only_for_the_token(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))  # HTTP redirects
        token = proxy.probe.token
        path = PREFIX.decode() + token
        for host in ("app.test", "127.0.0.1", "unknown.test"):
            response, closed = await request(proxy.http_port, get(path, host))
            assert (response.status, response.body) == (200, proof(token)), host
            assert not closed
        response, _ = await request(proxy.http_port, get(path + "?x=1", "app.test"))
        assert (response.status, response.body) == (200, proof(token))
        assert proxy.https_port is not None
        response, _ = await request(proxy.https_port, get(path), tls=authority.client_context(),
                                    server_hostname="app.test")
        assert (response.status, response.body) == (200, proof(token))
        for wrong in (PREFIX.decode() + "other", PREFIX.decode(), path + "x", path + "/"):
            response, _ = await request(proxy.http_port, get(wrong, "unknown.test"))
            assert response.status == 404 and token.encode() not in response.body
            assert proof(token) not in response.body
        assert a.requests == 0
        response, _ = await request(proxy.https_port, get("/.well-known/security.txt"),
                                    tls=authority.client_context(), server_hostname="app.test")
        assert response.header("x-served-by") == "a" and a.requests == 1


def test_each_proxy_draws_its_own_token() -> None:
    one, two = ProbeToken(), ProbeToken()
    assert one.token != two.token and len(one.token) >= 32
    assert one.answer(PREFIX + one.token.encode()) == proof(one.token)
    assert one.answer(PREFIX + two.token.encode()) is None
    assert proof(one.token) != proof(two.token)
