"""GET /doctor/probe and /doctor/challenges: of the domains of the apps the caller's key
may see, those the proxy holds a certificate for, whether the key is limited to apps, and
fresh nonces with their answers; any key may ask, none may change, and an app key may ask
nothing else under /doctor."""

from __future__ import annotations

from agent.proxy import RouteCounters
from agent.proxy.probe import MOST_PER_CALLER, TTL, Challenge, ProbeKey
from agent.store.keys import SshKey
from tests.api.conftest import World


class ProxyHolding:
    """The proxy as the API reads it: a probe key and the names it has certificates for."""

    def __init__(self, *names: str) -> None:
        self._names = frozenset(names)
        self.probe = ProbeKey()

    def counters(self, name: str) -> RouteCounters:
        raise AssertionError("not asked here")

    def serves_tls(self, host: str) -> bool:
        return host in self._names or "*." + host.partition(".")[2] in self._names

    def probe_challenges(self, count: int, caller: str = "") -> list[Challenge]:
        return self.probe.issue(count, caller)


def test_only_the_callers_domains_with_certificates(world: World) -> None:
    for name in ("shop", "blog"):
        world.client.post("/apps", json={"name": name})
    world.services.apps.add_domain("shop", "shop.example.com")
    world.services.apps.add_domain("blog", "blog.example.com")
    world.services.proxy = ProxyHolding("*.apps.example.test", "blog.example.com", "x.test")
    world.services.keys.add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    assert world.client.get("/doctor/probe").json() == {
        "limited": False, "tls_hosts": ["blog.apps.example.test", "blog.example.com",
                                        "shop.apps.example.test"]}
    ci = {"X-Berth-Key": "ci"}
    assert world.client.get("/doctor/probe", headers=ci).json() == {
        "limited": True, "tls_hosts": ["shop.apps.example.test"]}
    assert world.client.post("/doctor/probe", headers=ci).status_code == 403
    assert world.client.get("/doctor/other", headers=ci).status_code == 403


def test_challenges_are_fresh_nonces_the_proxy_answers(world: World) -> None:
    proxy = world.services.proxy = ProxyHolding()
    world.services.keys.add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    answer = world.client.get("/doctor/challenges", params={"count": "3"},
                              headers={"X-Berth-Key": "ci"}).json()
    issued = answer["challenges"]
    assert answer["ttl"] == TTL and len(issued) == 3 and len({c["nonce"] for c in issued}) == 3
    for challenge in issued:
        target = b"/.well-known/berth-probe/" + challenge["nonce"].encode()
        assert proxy.probe.answer(target) == challenge["answer"].encode()
    for bad in ("0", "257", "x", "-1"):
        response = world.client.get("/doctor/challenges", params={"count": bad})
        assert response.status_code == 400
        assert response.json()["error"].startswith("count must be a number from 1 to 256")


def test_an_app_key_cannot_crowd_out_the_servers_own_nonces(world: World) -> None:
    world.services.proxy = ProxyHolding()
    world.services.keys.add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    ci = {"X-Berth-Key": "ci"}
    for _ in range(MOST_PER_CALLER // 256):
        assert world.client.get("/doctor/challenges", params={"count": "256"},
                                headers=ci).status_code == 200
    refused = world.client.get("/doctor/challenges", params={"count": "1"}, headers=ci)
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("too many probe nonces outstanding")
    assert len(world.client.get("/doctor/challenges", params={"count": "256"})
               .json()["challenges"]) == 256


def test_without_a_proxy_it_says_so(world: World) -> None:
    for path in ("/doctor/probe", "/doctor/challenges"):
        response = world.client.get(path)
        assert response.status_code >= 400
        assert response.json()["error"] == "the proxy is not running in this agent"
