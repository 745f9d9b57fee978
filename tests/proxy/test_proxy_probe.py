"""berth doctor's probe: a challenge and its response. Answered over HTTP and HTTPS, for
any host (an address, an app's domain, a host with no route), before routing and
redirects, only for a nonce the agent issued and only while it is fresh, with an answer
no one without the proxy's secret can compute; everything else under its prefix is a
plain 404, and the app's own /.well-known/ paths still reach it."""

from __future__ import annotations

import pytest

from agent.proxy import Upstream
from agent.proxy.probe import MOST_PER_CALLER, PREFIX, TTL, ProbeKey, TooManyNonces
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, get, request, running_proxy


async def test_an_issued_nonce_is_answered_with_its_own_answer_only(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))  # HTTP redirects
        one, two, *others = proxy.probe_challenges(4)
        assert one.nonce != two.nonce and one.answer != two.answer
        path = PREFIX.decode() + one.nonce
        for host, nonce in zip(("app.test", "127.0.0.1", "unknown.test"), [*others, one]):
            response, closed = await request(proxy.http_port, get(PREFIX.decode() + nonce.nonce,
                                                                  host))
            assert (response.status, response.body) == (200, nonce.answer.encode()), host
            assert not closed
        response, _ = await request(proxy.http_port, get(path, "app.test"))
        assert response.status == 404  # answered once, then forgotten
        assert proxy.https_port is not None
        response, _ = await request(proxy.https_port, get(PREFIX.decode() + two.nonce + "?x=1"),
                                    tls=authority.client_context(), server_hostname="app.test")
        assert (response.status, response.body) == (200, two.answer.encode())
        made_up = "A" * len(one.nonce)  # the form of a nonce, never issued
        for wrong in (PREFIX.decode() + made_up, PREFIX.decode(), path + "x", path + "/"):
            response, _ = await request(proxy.http_port, get(wrong, "unknown.test"))
            assert response.status == 404 and one.answer.encode() not in response.body
        assert a.requests == 0
        response, _ = await request(proxy.https_port, get("/.well-known/security.txt"),
                                    tls=authority.client_context(), server_hostname="app.test")
        assert response.header("x-served-by") == "a" and a.requests == 1


def test_the_answer_needs_the_secret_and_a_fresh_issued_nonce() -> None:
    now = [1000.0]
    key, other = ProbeKey(clock=lambda: now[0]), ProbeKey(clock=lambda: now[0])
    [mine] = key.issue(1)
    [theirs] = other.issue(1)
    assert key.answer(PREFIX + mine.nonce.encode()) == mine.answer.encode()
    # A nonce another proxy issued (a forwarded probe) is not answered here, and an
    # answer given for one nonce is not the answer to another.
    assert key.answer(PREFIX + theirs.nonce.encode()) is None
    assert other.answer(PREFIX + theirs.nonce.encode()) == theirs.answer.encode()
    assert theirs.answer != mine.answer
    assert len(mine.nonce) >= 32 and len(mine.answer) == 64
    now[0] += TTL + 1  # a nonce that leaked (sent to another server) expires
    assert key.answer(PREFIX + mine.nonce.encode()) is None
    assert len(key.issue(10_000)) == 256  # at most MOST_AT_ONCE per call


def test_a_leaked_nonce_is_worth_one_answer_within_seconds() -> None:
    now = [1000.0]
    key = ProbeKey(clock=lambda: now[0])
    assert TTL <= 30  # doctor's 5 s probes and a margin, not a minute
    first, second = key.issue(2)
    assert key.answer(PREFIX + first.nonce.encode()) == first.answer.encode()
    assert key.answer(PREFIX + first.nonce.encode()) is None  # spent
    now[0] += TTL - 1
    assert key.answer(PREFIX + second.nonce.encode()) == second.answer.encode()


def test_one_caller_cannot_evict_anothers_live_nonces() -> None:
    now = [1000.0]
    key = ProbeKey(clock=lambda: now[0])
    [admins] = key.issue(1, "")
    for _ in range(MOST_PER_CALLER // 256):
        key.issue(256, "ci")
    with pytest.raises(TooManyNonces, match="too many probe nonces outstanding"):
        key.issue(1, "ci")
    for caller in (f"app{n}" for n in range(20)):  # many keys: refused when full, no eviction
        try:
            key.issue(256, caller)
        except TooManyNonces:
            break
    else:
        raise AssertionError("no limit on live nonces in all")
    assert key.answer(PREFIX + admins.nonce.encode()) == admins.answer.encode()
    now[0] += TTL + 1  # expired ones make room again
    assert len(key.issue(256, "ci")) == 256
