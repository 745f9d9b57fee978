"""Domains that cannot collide: names under deploy.domain are apps' default domains, and
a domain change that fails leaves no trace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.testclient import TestClient

from agent.api.app import build_api
from agent.errors import Conflict
from tests.api.conftest import World, make_services


def kinds(world: World, app: str) -> list[str]:
    return [e.kind for e in world.services.events.list(app, 100)]


def test_names_reserved_for_default_domains_are_refused(world: World) -> None:
    for name in ("shop", "victim"):
        world.client.post("/apps", json={"name": name})
    for domain, says in (("victim.apps.example.test", "reserved"),
                         ("ghost.apps.example.test", "reserved"),
                         ("apps.example.test", "reserved"),
                         ("shop.apps.example.test", "already shop's default domain")):
        response = world.client.post("/apps/shop/domains", json={"domain": domain})
        assert response.status_code == 409, domain
        assert says in response.json()["error"]
    assert world.services.apps.domains("shop") == []
    assert "DomainAdded" not in kinds(world, "shop")
    # Deeper names are nobody's default domain.
    deeper = world.client.post("/apps/shop/domains", json={"domain": "a.b.apps.example.test"})
    assert deeper.status_code == 201, deeper.text


def test_an_app_whose_default_domain_is_taken_is_not_created(world: World) -> None:
    world.client.post("/apps", json={"name": "evil"})
    world.services.apps.add_domain("evil", "victim.apps.example.test")  # from before the rule
    for response in (world.client.post("/apps", json={"name": "victim"}),
                     world.client.post("/apps/victim/repo")):
        assert response.status_code == 409
        assert "custom domain of evil" in response.json()["error"]
    assert world.services.apps.names() == ["evil"]
    assert not (world.services.config.paths.repo("victim") / "HEAD").exists()
    # Such an old row is never served as evil's.
    assert world.client.get("/apps/evil/domains").json()["domains"] == ["evil.apps.example.test"]


class RefusingCertificates:
    """The certificate side refusing one name, as it does for another app's domain."""

    def __init__(self) -> None:
        self.wanted: dict[str, list[str]] = {}

    def set_app_domains(self, app: str, domains: Sequence[str], *, acme: bool = True) -> None:
        if "taken.example.com" in domains:
            raise Conflict("domain 'taken.example.com' belongs to app 'other'")
        self.wanted[app] = list(domains)

    def forget_app(self, app: str) -> None:
        self.wanted.pop(app, None)


def test_a_domain_change_that_fails_leaves_no_trace(tmp_path: Path) -> None:
    certificates = RefusingCertificates()
    services, db = make_services(tmp_path, certificates)
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        client.post("/apps", json={"name": "shop"})
        client.post("/apps/shop/domains", json={"domain": "shop.example.com"})
        refused = client.post("/apps/shop/domains", json={"domain": "taken.example.com"})
        assert refused.status_code == 409 and "belongs to app" in refused.json()["error"]
        assert services.apps.domains("shop") == ["shop.example.com"]
        assert certificates.wanted["shop"] == ["shop.apps.example.test", "shop.example.com"]
        assert [e.kind for e in services.events.list("shop", 100)].count("DomainAdded") == 1
    db.close()
