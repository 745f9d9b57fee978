"""A push's last lines say why a host is served over plain HTTP: "HTTPS pending:
<reason>, see `berth certs APP`", from the certificate manager's own state."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from agent.certs.status import CertStatus
from agent.deploy.certificates import https_pending
from agent.deploy.output import DeployOutput, announce_live


def status(domain: str, state: str, error: str | None = None) -> CertStatus:
    return CertStatus(app="shop", domain=domain, source="none", acme=True, state=state,  # type: ignore[arg-type]
                      last_error=error)


class States:
    def __init__(self, statuses: Sequence[CertStatus]) -> None:
        self.statuses = statuses

    def status(self, app: str | None = None) -> Sequence[CertStatus]:
        assert app == "shop"
        return self.statuses


def announced(tls: frozenset[str], states: States | None) -> list[str]:
    seen: list[str] = []
    release = SimpleNamespace(processes={"web": "x"}, version="v1")
    announce_live(DeployOutput(seen.append), "shop", release, {"web": 1},  # type: ignore[arg-type]
                  ["shop.example.com", "www.example.com"], tls, states)
    return seen


def test_the_push_ends_with_why_https_is_pending():
    states = States([status("shop.example.com", "valid"),
                     status("www.example.com", "failing", "DNS problem: NXDOMAIN")])
    seen = announced(frozenset({"shop.example.com"}), states)
    assert "is live: https://shop.example.com http://www.example.com" in seen[0]
    assert seen[-1].strip() == ("HTTPS pending for www.example.com: the last attempt failed: "
                                "DNS problem: NXDOMAIN, see `berth certs shop`")


def test_all_https_says_nothing_more():
    seen = announced(frozenset({"shop.example.com", "www.example.com"}), States([]))
    assert not any("HTTPS pending" in line for line in seen)


def test_reasons():
    assert https_pending([status("a.example.com", "issuing")], "a.example.com") == (
        "the certificate is being issued")
    assert https_pending([status("a.example.com", "acme-disabled")], "a.example.com") == (
        "ACME is off on this server (acme.enabled)")
    assert https_pending([], "a.example.com") == "no certificate is wanted for it yet"
