"""ACME HTTP-01 answers: on the HTTP port, before routing and redirects, for any host."""

from __future__ import annotations

import pytest

from agent.errors import InvalidName
from agent.proxy import Upstream
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, get, request, running_proxy

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


async def test_challenge_answered_for_any_host_before_routing_and_redirects(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        proxy.challenges.set(TOKEN, KEY_AUTHORIZATION)
        path = f"/.well-known/acme-challenge/{TOKEN}"
        for host in ("app.test", "unknown.test"):
            response, closed = await request(proxy.http_port, get(path, host))
            assert (response.status, response.body) == (200, KEY_AUTHORIZATION.encode())
            assert not closed
        response, _ = await request(proxy.http_port, get("/.well-known/acme-challenge/other"))
        assert response.status == 404
        proxy.challenges.remove(TOKEN)
        response, _ = await request(proxy.http_port, get(path))
        assert response.status == 404
        assert a.requests == 0


def test_tokens_are_validated() -> None:
    from agent.proxy.challenges import ChallengeTokens

    tokens = ChallengeTokens()
    with pytest.raises(InvalidName):
        tokens.set("../etc/passwd", "x.y")
    with pytest.raises(InvalidName):
        tokens.set(TOKEN, "has space")
    assert len(tokens) == 0
