"""The manager's behaviour with a scripted CA: background issuance, backoff that survives
restarts, rate limits, dry runs, preflight, custom certificates, ARI and status.

The CA here is `ScriptedIssuer` (tests/certs/fakes.py) so a test can choose failures
and Retry-After values; the same paths run against real Pebble in test_certs_pebble.py.
Time is `FakeTime`: the manager's clock and its scan loop's sleep, moved by the test, so
backoffs and renewals due in seconds take no real waiting.
State is a real SQLite database and real files in a temp dir.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.certs.errors import (
    AcmeFailure,
    AcmeOff,
    CertificateError,
    ChallengeFailed,
    InvalidPem,
    KeyMismatch,
    NamesNotCovered,
    RateLimited,
)
from agent.certs.manager import CertificateManager
from agent.certs.settings import AcmeSettings
from agent.certs.state import SCHEMA
from agent.certs.status import render
from agent.errors import Conflict, InvalidName, NotFound
from agent.store.db import Database
from tests.certs.fakes import FakeTime, MemoryChallenges, MemorySink, ScriptedIssuer, ThrowawayCA

PROD = "https://ca.example/prod/dir"
STAGING = "https://ca.example/staging/dir"


async def loopback(name: str) -> Sequence[str]:
    return ["127.0.0.1"]


@dataclass
class Rig:
    tmp: Path
    settings: AcmeSettings
    sink: MemorySink = field(default_factory=MemorySink)
    challenges: MemoryChallenges = field(default_factory=MemoryChallenges)
    resolver: Callable[[str], Awaitable[Sequence[str]]] = loopback
    time: FakeTime = field(default_factory=FakeTime)
    issuer: ScriptedIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.issuer = ScriptedIssuer(self.time)

    @asynccontextmanager
    async def manager(self) -> AsyncIterator[CertificateManager]:
        db = Database.open(self.tmp / "berth.db", [SCHEMA])
        manager = CertificateManager(self.settings, self.tmp / "certs", db, self.challenges,
                                     self.sink, resolver=self.resolver, issuer=self.issuer,
                                     clock=self.time, sleeper=self.time.sleep)
        self.time.busy = lambda: any(s.state in ("issuing", "renewing") for s in manager.status())
        await manager.start()
        try:
            yield manager
        finally:
            await manager.stop()
            db.close()


def settings(**overrides: Any) -> AcmeSettings:
    base: dict[str, Any] = {"directory": PROD, "staging_directory": STAGING, "preflight": False,
                                "staging_dry_run": False, "backoff_min": 60, "backoff_max": 3600}
    return AcmeSettings(**{**base, **overrides})


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def fail_with(failure: Callable[[str], AcmeFailure]) -> Callable[[str, str], AcmeFailure]:
    return lambda directory, domain: failure(domain)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, settings())


def test_new_domain_is_served_once_its_certificate_arrives(rig: Rig) -> None:
    async def body() -> None:
        rig.issuer.delay = 0.2
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com", "example.com"])
            assert rig.sink.names() == []  # serving never waits for issuance
            assert {s.state for s in manager.status("web")} == {"pending"}
            await until(lambda: {s.state for s in manager.status("web")} == {"issuing"})
            await until(lambda: len(rig.sink.names()) == 2)
            statuses = manager.status("web")
            assert [s.domain for s in statuses] == ["example.com", "www.example.com"]
            for s in statuses:
                assert (s.state, s.source, s.issuer) == ("valid", "acme", "berth unit-test CA")
                assert s.days_left == pytest.approx(90, abs=0.01)
                assert s.next_renewal == pytest.approx(s.not_after - 30 * 86400, abs=5)
            assert rig.challenges.tokens == {}  # tokens withdrawn after the order
            assert len(rig.challenges.history) == 2
    asyncio.run(body())


@pytest.mark.parametrize("bad", ["*.example.com", "203.0.113.5", "::1", "exa mple.com",
                                 "Example.com", "localhost", "-x.example.com"])
def test_bad_domains_are_refused_and_nothing_changes(rig: Rig, bad: str) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"], acme=False)
            with pytest.raises(InvalidName) as caught:
                manager.set_app_domains("web", ["ok.example.com", bad])
            assert "\n" not in str(caught.value)
            assert [s.domain for s in manager.status()] == ["www.example.com"]
            assert rig.issuer.orders == []
    asyncio.run(body())


def test_a_domain_of_another_app_is_refused(rig: Rig) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"], acme=False)
            with pytest.raises(Conflict, match="belongs to app 'web'"):
                manager.set_app_domains("shop", ["shop.example.com", "www.example.com"])
            assert [s.app for s in manager.status()] == ["web"]
    asyncio.run(body())


def test_dropped_domain_leaves_the_sink(rig: Rig) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["a.example.com", "b.example.com"])
            await until(lambda: len(rig.sink.names()) == 2)
            manager.set_app_domains("web", ["b.example.com"])
            assert rig.sink.names() == ["b.example.com"]
            manager.set_app_domains("web", ["a.example.com", "b.example.com"])
            assert rig.sink.names() == ["a.example.com", "b.example.com"]  # stored cert reused
            assert rig.issuer.count("a.example.com") == 1
            manager.forget_app("web")
            assert rig.sink.names() == [] and manager.status() == []
    asyncio.run(body())


def test_failure_backs_off_keeps_old_cert_and_survives_restart(rig: Rig) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: rig.sink.names() == ["www.example.com"])
            old_serial = rig.sink.serial("www.example.com")
            rig.issuer.fail = fail_with(lambda d: ChallengeFailed(d, "connection refused"))
            [status] = await manager.renew("www.example.com", force=True)
            assert status.state == "failing" and status.failures == 1
            assert "HTTP-01 challenge failed: connection refused" in (status.last_error or "")
            assert status.next_attempt == pytest.approx(time.time() + 60, abs=3)
            assert rig.sink.serial("www.example.com") == old_serial  # still served
            await rig.time.advance(2.5)  # the scan loop is awake: it must not retry now
            assert rig.issuer.count("www.example.com") == 2
        async with rig.manager() as manager:  # restart: the backoff is remembered
            await rig.time.advance(1.5)
            assert rig.issuer.count("www.example.com") == 2
            [status] = manager.status()
            assert status.state == "failing" and status.failures == 1
            assert rig.sink.serial("www.example.com") == old_serial
            assert "next attempt" in render(manager.status())
    asyncio.run(body())


def test_new_domain_that_keeps_failing_is_not_hammered(rig: Rig) -> None:
    rig.settings = settings(backoff_min=1, backoff_max=3600)
    rig.issuer.fail = fail_with(lambda d: ChallengeFailed(d, "404"))

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await rig.time.advance(4.5)
            # 1 s, 2 s, 4 s backoff: at most 3 attempts in 4.5 s, never a tight loop.
            assert 2 <= rig.issuer.count("www.example.com") <= 3
            [status] = manager.status()
            assert status.state in ("failing", "issuing") and status.source == "none"
    asyncio.run(body())


def test_rate_limit_retry_after_is_honoured_even_when_forced(rig: Rig) -> None:
    rig.issuer.fail = fail_with(lambda d: RateLimited(d, "too many certificates", 7200))

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: manager.status()[0].state == "failing")
            [status] = manager.status()
            assert "rate limited by the CA: too many certificates (retry after 7200 s)" in (
                status.last_error or "")
            assert status.next_attempt == pytest.approx(time.time() + 7200, abs=5)
            await manager.renew("web", force=True)
            assert rig.issuer.count("www.example.com") == 1
    asyncio.run(body())


def test_dry_run_against_staging_after_a_failure(rig: Rig) -> None:
    rig.settings = settings(staging_dry_run=True)
    outcomes = {PROD: True}
    rig.issuer.fail = lambda directory, domain: (
        ChallengeFailed(domain, "timeout") if outcomes.get(directory) else None)

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: manager.status()[0].state == "failing")
            assert rig.issuer.orders == [(PROD, "www.example.com")]  # first try: production
            outcomes[STAGING] = True
            [status] = await manager.renew("web")
            assert "staging dry run failed" in (status.last_error or "")
            assert rig.issuer.orders[1:] == [(STAGING, "www.example.com")]  # prod not tried
            outcomes.clear()
            [status] = await manager.renew("web")
            assert status.state == "valid"
            assert rig.issuer.orders[2:] == [(STAGING, "www.example.com"),
                                             (PROD, "www.example.com")]
            assert manager.orders_placed("www.example.com") == 2
            assert manager.orders_placed("www.example.com", STAGING) == 2
    asyncio.run(body())


def test_preflight_stops_a_misdirected_name_before_any_order(rig: Rig) -> None:
    async def elsewhere(name: str) -> Sequence[str]:
        return ["192.0.2.44"] if name == "typo.example.com" else []

    rig.settings = settings(preflight=True)
    rig.resolver = elsewhere

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["typo.example.com", "nodns.example.com"])
            await until(lambda: all(s.state == "failing" for s in manager.status()))
            errors = {s.domain: s.last_error for s in manager.status()}
            assert "resolves to 192.0.2.44, not to this server" in errors["typo.example.com"]
            assert "does not resolve" in errors["nodns.example.com"]
            assert rig.issuer.orders == []
    asyncio.run(body())


def test_preflight_accepts_local_and_listed_addresses(rig: Rig) -> None:
    async def resolver(name: str) -> Sequence[str]:
        return ["127.0.0.1", "203.0.113.7"]

    rig.settings = settings(preflight=True, public_addresses=("203.0.113.7",))
    rig.resolver = resolver

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: rig.sink.names() == ["www.example.com"])
    asyncio.run(body())


def test_custom_certificate_checks_and_replaces_acme(rig: Rig) -> None:
    ca = ThrowawayCA("Custom Corp CA")
    now = time.time()
    good_chain, good_key = ca.issue_pair(["www.example.com", "example.com"], now, now + 86400)
    other_chain, other_key = ca.issue_pair(["www.example.com"], now, now + 86400)
    old_chain, old_key = ca.issue_pair(["www.example.com", "example.com"], now - 90, now - 10)

    async def body() -> None:
        async with rig.manager() as manager:
            with pytest.raises(CertificateError, match="has no domains"):
                await manager.add_custom("web", good_chain, good_key)
            manager.set_app_domains("web", ["www.example.com", "example.com"])
            await until(lambda: len(rig.sink.names()) == 2)
            acme_serial = rig.sink.serial("example.com")
            with pytest.raises(KeyMismatch):
                await manager.add_custom("web", good_chain, other_key)
            with pytest.raises(InvalidPem):
                await manager.add_custom("web", b"not a pem", good_key)
            with pytest.raises(NamesNotCovered, match="does not cover example.com"):
                await manager.add_custom("web", other_chain, other_key)
            with pytest.raises(CertificateError, match="expired"):
                await manager.add_custom("web", old_chain, old_key)
            assert not (rig.tmp / "certs" / "custom").exists()  # nothing stored
            assert rig.sink.serial("example.com") == acme_serial
            status = await manager.add_custom("web", good_chain, good_key)
            assert (status.source, status.issuer) == ("custom", "Custom Corp CA")
            assert rig.sink.certs["example.com"][0] == good_chain
            with pytest.raises(AcmeOff):
                await manager.renew("web")
        async with rig.manager() as manager:  # survives restart
            assert rig.sink.certs["www.example.com"][0] == good_chain
            await manager.remove("web")
            assert rig.sink.serial("example.com") == acme_serial  # back to ACME's
            with pytest.raises(NotFound):
                await manager.remove("web")
    asyncio.run(body())


def test_acme_off_serves_http_only(rig: Rig) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"], acme=False)
            await rig.time.advance(1.2)
            assert rig.issuer.orders == [] and rig.sink.names() == []
            assert manager.status()[0].state == "http-only"
            with pytest.raises(AcmeOff, match="ACME is off for web"):
                await manager.renew("web")
            with pytest.raises(NotFound):
                await manager.renew("nosuch")
    asyncio.run(body())


def test_short_lived_certificate_is_renewed_at_half_its_life(rig: Rig) -> None:
    rig.issuer.lifetime = 4.0

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: rig.sink.names() == ["www.example.com"])
            first = rig.sink.serial("www.example.com")
            await rig.time.until(lambda: rig.sink.serial("www.example.com") != first, limit=8)
            assert rig.issuer.count("www.example.com") == 2
    asyncio.run(body())


def test_ari_window_moves_the_renewal(rig: Rig) -> None:
    rig.issuer.ari_after = 2.0  # the CA wants renewal 2 s into a 90-day certificate

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: rig.sink.names() == ["www.example.com"])
            await until(lambda: rig.issuer.ari_checks >= 1)
            await rig.time.until(lambda: rig.issuer.count("www.example.com") == 2, limit=8)
            first, second = rig.issuer.issued_at[:2]
            assert second >= int(first) + 2.0  # not before the CA's time (not_before is whole s)
            assert second < first + 10  # and not at the 60-day default either
    asyncio.run(body())


def test_restart_serves_stored_certificates_without_ordering(rig: Rig) -> None:
    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com"])
            await until(lambda: rig.sink.names() == ["www.example.com"])
        serial = rig.sink.serial("www.example.com")
        rig.sink = MemorySink()
        async with rig.manager() as manager:
            assert rig.sink.names() == ["www.example.com"]  # before any scan ran
            assert rig.sink.serial("www.example.com") == serial
            await rig.time.advance(1.2)
            assert rig.issuer.count("www.example.com") == 1
            assert manager.status()[0].state == "valid"
    asyncio.run(body())


def test_status_table_and_dict(rig: Rig) -> None:
    rig.issuer.fail = lambda directory, domain: (
        ChallengeFailed(domain, "404") if domain.startswith("bad") else None)

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com", "bad.example.com"])
            await until(lambda: {s.state for s in manager.status()} == {"valid", "failing"})
            table = render(manager.status())
            lines = table.splitlines()
            assert lines[0].split()[:3] == ["DOMAIN", "APP", "STATE"]
            assert "bad.example.com" in lines[1] and "failing" in lines[1]
            assert lines[2].startswith("  last error: bad.example.com: HTTP-01 challenge")
            assert "www.example.com" in table and "berth unit-test CA" in table
            data = manager.status()[1].to_dict()
            assert data["domain"] == "www.example.com" and data["state"] == "valid"
            assert str(data["not_after"]).endswith("Z") and data["days_left"] == 90.0
    asyncio.run(body())


def test_reconcile_at_boot_forgets_destroyed_apps_and_moves_domains(rig: Rig) -> None:
    ca = ThrowawayCA()
    now = time.time()

    async def body() -> None:
        async with rig.manager() as manager:
            manager.set_app_domains("web", ["www.example.com", "moved.example.com"])
            manager.set_app_domains("gone", ["gone.example.com"])
            await until(lambda: len(rig.sink.names()) == 3)
            await manager.add_custom("gone", *ca.issue_pair(["gone.example.com"], now, now + 999))
        async with rig.manager() as manager:  # the agent restarts; deploy state says:
            manager.reconcile({"web": (["www.example.com"], True),
                               "shop": (["moved.example.com"], True)})
            assert [(s.app, s.domain) for s in manager.status()] == [
                ("shop", "moved.example.com"), ("web", "www.example.com")]
            assert rig.sink.names() == ["moved.example.com", "www.example.com"]
            assert not (rig.tmp / "certs" / "custom" / "gone.pem").exists()
            assert rig.issuer.count("moved.example.com") == 1  # its certificate moved with it
    asyncio.run(body())
