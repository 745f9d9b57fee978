"""GET /doctor/probe: the proxy's probe token, and of the domains of the apps the caller's
key may see, those the proxy holds a certificate for; any key may ask, none may change."""

from __future__ import annotations

from agent.proxy import RouteCounters
from agent.store.keys import SshKey
from tests.api.conftest import World


class ProxyHolding:
    """The proxy as the API reads it: a token and the names it has certificates for."""

    probe_token = "t0ken"

    def __init__(self, *names: str) -> None:
        self._names = frozenset(names)

    def counters(self, name: str) -> RouteCounters:
        raise AssertionError("not asked here")

    def serves_tls(self, host: str) -> bool:
        return host in self._names or "*." + host.partition(".")[2] in self._names


def test_the_probe_token_and_only_the_callers_domains_with_certificates(world: World) -> None:
    for name in ("shop", "blog"):
        world.client.post("/apps", json={"name": name})
    world.services.apps.add_domain("shop", "shop.example.com")
    world.services.apps.add_domain("blog", "blog.example.com")
    world.services.proxy = ProxyHolding("*.apps.example.test", "blog.example.com", "x.test")
    world.services.keys.add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    assert world.client.get("/doctor/probe").json() == {
        "token": "t0ken", "tls_hosts": ["blog.apps.example.test", "blog.example.com",
                                        "shop.apps.example.test"]}
    ci = {"X-Berth-Key": "ci"}
    assert world.client.get("/doctor/probe", headers=ci).json() == {
        "token": "t0ken", "tls_hosts": ["shop.apps.example.test"]}
    assert world.client.post("/doctor/probe", headers=ci).status_code == 403


def test_without_a_proxy_it_says_so(world: World) -> None:
    response = world.client.get("/doctor/probe")
    assert response.status_code >= 400
    assert response.json()["error"] == "the proxy is not running in this agent"

