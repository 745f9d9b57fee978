"""Automatic HTTPS end to end against real Pebble, through the proxy's real ports.

Each test runs the real `Proxy` on ephemeral loopback ports in front of a real app
server, real Pebble (HTTP-01 port pointed at the proxy's HTTP port, pebble-challtestsrv
answering every name with 127.0.0.1) and the real `CertificateManager` with the real ACME
adapter. Orders are counted twice: by Pebble (its log) and by the manager's own counter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.certs.interfaces import ChallengeResponder
from agent.certs.manager import CertificateManager
from agent.certs.settings import AcmeSettings
from agent.certs.state import SCHEMA
from agent.certs.status import render
from agent.proxy import Proxy, ProxySettings, RouteOptions, Upstream
from agent.store.db import Database
from tests.certs.conftest import StartPebble
from tests.certs.pebble import Pebble
from tests.certs.web import AppServer, client_context, get

pytestmark = pytest.mark.pebble

HOST = "www.example.test"


def run(coro: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(coro, timeout=120))


async def challtestsrv_view(name: str) -> Sequence[str]:
    """What pebble-challtestsrv answers for every name (so the preflight runs for real)."""
    return ["127.0.0.1"]


class WrongAnswers:
    """Publishes wrong key authorizations into the proxy's real token map when `broken`.

    Pebble then fetches the token through the proxy's real HTTP port and gets an answer
    that does not match: a real failed HTTP-01 validation, like a misrouted challenge.
    """

    def __init__(self, real: ChallengeResponder) -> None:
        self.real = real
        self.broken = False

    def set(self, token: str, key_authorization: str) -> None:
        self.real.set(token, f"{token}.wrong" if self.broken else key_authorization)

    def remove(self, token: str) -> None:
        self.real.remove(token)


@dataclass
class Stack:
    tmp: Path
    app: AppServer
    proxy: Proxy
    pebble: Pebble

    def settings(self, **overrides: Any) -> AcmeSettings:
        base: dict[str, Any] = {
            "email": "ops@example.test", "directory": self.pebble.directory,
            "ca_bundle": self.pebble.ca_bundle, "staging_dry_run": False,
            "scan_interval": 2.0, "network_timeout": 10.0, "order_timeout": 30.0}
        return AcmeSettings(**{**base, **overrides})

    @asynccontextmanager
    async def manager(self, settings: AcmeSettings | None = None,
                      challenges: ChallengeResponder | None = None,
                      ) -> AsyncIterator[CertificateManager]:
        db = Database.open(self.tmp / "berth.db", [SCHEMA])
        manager = CertificateManager(
            settings or self.settings(), self.tmp / "certs", db,
            challenges or self.proxy.challenges, self.proxy.certificates,
            resolver=challtestsrv_view)
        await manager.start()
        try:
            yield manager
        finally:
            await manager.stop()
            db.close()

    def route(self, *hosts: str) -> None:
        self.proxy.set_route("web", list(hosts), [Upstream("127.0.0.1", self.app.port)],
                             RouteOptions())

    async def https(self, host: str = HOST) -> Any:
        return await get(self.proxy.https_port or 0, host,
                         tls=client_context(self.pebble.root_pem()))

    async def http(self, host: str = HOST, path: str = "/") -> Any:
        return await get(self.proxy.http_port, host, path)


@asynccontextmanager
async def stack(tmp: Path, start_pebble: StartPebble, validity: int | None = None,
                ) -> AsyncIterator[Stack]:
    app = await AppServer().start()
    proxy = Proxy(ProxySettings(listen="127.0.0.1", http_port=0, https_port=0,
                                access_log=False))
    await proxy.start()
    built: Stack | None = None
    try:
        pebble = await asyncio.to_thread(start_pebble, proxy.http_port, validity)
        built = Stack(tmp, app, proxy, pebble)
        yield built
    finally:
        await (built.proxy if built else proxy).stop(2.0)  # a test may have replaced it
        await app.stop()


def forget_account(tmp: Path) -> None:
    """Remove the stored ACME account, so the next order registers a new one.

    Pebble reuses an account's valid authorization about once in 100 orders even with
    PEBBLE_AUTHZREUSE=0 (it makes a new one only when rand.Intn(100) > the percentage),
    and an order with a reused authorization asks for no challenge at all. A new account
    has no authorization to reuse: its order's challenge is always really validated.
    """
    for path in (tmp / "certs" / "acme").glob("*/account.*"):
        path.unlink()


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_issued_through_the_proxy_then_https_reaches_the_app(
        tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s, s.manager() as manager:
            s.route(HOST)
            before = await s.http()  # no certificate yet: plain HTTP serves the app
            assert (before.status, before.body) == (200, f"app saw {HOST}".encode())
            started = time.monotonic()
            manager.set_app_domains("web", [HOST])
            await until(lambda: manager.status()[0].state == "valid")
            elapsed = time.monotonic() - started
            # Pebble fetched the token from the proxy's own HTTP port.
            assert f"http://{HOST}:{s.proxy.http_port}/.well-known/acme-challenge/" in (
                s.pebble.log_text)
            secure = await s.https()  # verified against Pebble's root, with SNI
            assert (secure.status, secure.body) == (200, f"app saw {HOST}".encode())
            [status] = manager.status()
            stored = next((tmp_path / "certs" / "acme").glob(f"*/live/{HOST}.pem"))
            leaf = x509.load_pem_x509_certificates(stored.read_bytes())[0]
            assert secure.serial == format(leaf.serial_number, "x")  # the stored one, served
            assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)  # default key
            assert status.issuer is not None and status.issuer.startswith("Pebble Intermediate")
            assert (status.source, status.last_error, status.failures) == ("acme", None, 0)
            redirect = await s.http(path="/some/page?x=1")
            assert redirect.status in (301, 308)
            assert redirect.headers["location"].startswith(f"https://{HOST}")
            assert redirect.headers["location"].endswith("/some/page?x=1")
            challenge = await s.http(path="/.well-known/acme-challenge/nope")
            assert challenge.status == 404  # challenges are never redirected
            assert (s.pebble.orders, manager.orders_placed(HOST)) == (1, 1)
            assert elapsed < 10
    run(body())


def test_renewal_changes_the_served_certificate_without_a_dropped_request(
        tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        # 10 s certificates: renewed at half their life, so about every 4.5 s.
        async with stack(tmp_path, pebble, validity=10) as s, s.manager() as manager:
            s.route(HOST)
            manager.set_app_domains("web", [HOST])
            await until(lambda: manager.status()[0].state == "valid")
            context = client_context(s.pebble.root_pem())
            serials: list[str] = []
            failures: list[str] = []
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline and len(set(serials)) < 3:
                try:  # a new connection each time: every request is a fresh handshake
                    response = await get(s.proxy.https_port or 0, HOST, tls=context)
                    assert response.status == 200, response.status
                    assert response.serial is not None
                    serials.append(response.serial)
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    failures.append(repr(exc))
            assert failures == []
            assert len(set(serials)) >= 2, "the certificate was never renewed"
            assert len(serials) > 20  # the loop really kept requesting across the swaps
            assert manager.orders_placed(HOST) == s.pebble.orders >= 2
    run(body())


def test_failing_challenge_backs_off_and_the_old_certificate_stays(
        tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s:
            answers = WrongAnswers(s.proxy.challenges)
            settings = s.settings(backoff_min=3.0, backoff_max=3600.0, scan_interval=1.0)
            async with s.manager(settings, answers) as manager:
                s.route(HOST, "new.example.test")
                manager.set_app_domains("web", [HOST])
                await until(lambda: manager.status()[0].state == "valid")
                old = (await s.https()).serial
                forget_account(tmp_path)  # or 1 order in 100 reuses the valid authorization
                answers.broken = True
                [failed] = await manager.renew(HOST, force=True)
                assert failed.state == "failing" and failed.failures == 1
                assert "HTTP-01 challenge failed" in (failed.last_error or "")
                assert failed.next_attempt is not None
                assert failed.next_attempt == pytest.approx(time.time() + 3, abs=2)
                assert (await s.https()).serial == old  # still served
                # A new name that cannot validate: retried after 3 s, then 6 s; never faster.
                manager.set_app_domains("web", [HOST, "new.example.test"])
                await asyncio.sleep(6.0)
                assert manager.orders_placed("new.example.test") == 2
                assert manager.orders_placed(HOST) == 2
                assert s.pebble.orders == 4
                statuses = {st.domain: st for st in manager.status()}
                new = statuses["new.example.test"]
                assert (new.state, new.source, new.failures) in {
                    ("failing", "none", 2), ("issuing", "none", 2)}
                plain = await s.http("new.example.test")  # still served, over HTTP
                assert plain.status == 200
                assert (await s.https()).serial == old
                assert "challenge failed" in render(manager.status())
            # The backoff survives a restart: no order for the failing name right away.
            async with s.manager(settings, answers) as manager:
                await asyncio.sleep(1.5)
                assert manager.orders_placed("new.example.test") == 2
                answers.broken = False
                [fixed] = await manager.renew("new.example.test")  # someone asked: go now
                assert fixed.state == "valid"
    run(body())


def test_restart_reuses_account_and_certificates(tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s:
            async with s.manager() as manager:
                s.route(HOST)
                manager.set_app_domains("web", [HOST])
                await until(lambda: manager.status()[0].state == "valid")
                served = (await s.https()).serial
            account = next((tmp_path / "certs" / "acme").glob("*/account.key"))
            key_before = account.read_bytes()
            uri_before = json.loads((account.parent / "account.json").read_text())["uri"]
            # The agent restarts: a fresh proxy (empty certificate store), same state.
            await s.proxy.stop(2.0)
            s.proxy = Proxy(ProxySettings(listen="127.0.0.1", http_port=0, https_port=0,
                                          access_log=False))
            await s.proxy.start()
            s.route(HOST)
            async with s.manager() as manager:
                assert set(s.proxy.certificates.names()) == {HOST}  # served at once
                assert (await s.https()).serial == served
                await asyncio.sleep(2.5)  # a scan or two
                assert s.pebble.orders == 1 and manager.orders_placed(HOST) == 1
                assert s.pebble.log_text.count("There are now 1 accounts") == 1
                assert "There are now 2 accounts" not in s.pebble.log_text
            assert account.read_bytes() == key_before
            assert json.loads((account.parent / "account.json").read_text())["uri"] == uri_before
    run(body())


def test_an_account_the_ca_lost_is_registered_again(tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s, s.manager(s.settings(key_type="rsa2048")) as m:
            s.route(HOST)
            m.set_app_domains("web", [HOST])
            await until(lambda: m.status()[0].state == "valid")
            account = next((tmp_path / "certs" / "acme").glob("*/account.json"))
            uri_before = json.loads(account.read_text())["uri"]
            await asyncio.to_thread(s.pebble.restart)  # same URL, no accounts any more
            [status] = await m.renew(HOST, force=True)
            assert status.state == "valid", status.last_error
            assert json.loads(account.read_text())["uri"] != uri_before
            served = s.proxy.certificates  # the new certificate chains to the new root
            assert HOST in served.names()
            response = await s.https()
            assert response.status == 200
            pair = (tmp_path / "certs" / "acme").glob("*/live/*.pem")
            leaf = x509.load_pem_x509_certificates(next(pair).read_bytes())[0]
            assert isinstance(leaf.public_key(), rsa.RSAPublicKey)  # key_type = "rsa2048"
            assert leaf.public_key().key_size == 2048
    run(body())


def test_after_a_failure_a_dry_run_goes_to_staging_first(
        tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s:
            # "Staging" is the same Pebble under another URL (localhost instead of
            # 127.0.0.1): its own directory key, account, files and counters.
            staging = s.pebble.directory.replace("127.0.0.1", "localhost")
            settings = s.settings(staging_dry_run=True, staging_directory=staging,
                                  backoff_min=60.0)
            answers = WrongAnswers(s.proxy.challenges)
            answers.broken = True
            async with s.manager(settings, answers) as manager:
                s.route(HOST)
                manager.set_app_domains("web", [HOST])
                await until(lambda: manager.status()[0].state == "failing")
                assert (manager.orders_placed(HOST), manager.orders_placed(HOST, staging)) == (1, 0)
                [status] = await manager.renew(HOST)
                assert "staging dry run failed: HTTP-01 challenge failed" in status.last_error
                assert (manager.orders_placed(HOST), manager.orders_placed(HOST, staging)) == (1, 1)
                answers.broken = False
                [status] = await manager.renew(HOST)
                assert status.state == "valid"
                assert (manager.orders_placed(HOST), manager.orders_placed(HOST, staging)) == (2, 2)
                assert s.pebble.orders == 4
                live = sorted(p.parent.parent.name for p in
                              (tmp_path / "certs" / "acme").glob("*/live/*.pem"))
                assert len(live) == 1 and live[0].startswith("127.0.0.1")  # staging's not kept
                assert (await s.https()).status == 200
    run(body())


def test_a_changed_email_updates_the_same_account(tmp_path: Path, pebble: StartPebble) -> None:
    async def body() -> None:
        async with stack(tmp_path, pebble) as s:
            s.route(HOST)
            async with s.manager() as manager:
                manager.set_app_domains("web", [HOST])
                await until(lambda: manager.status()[0].state == "valid")
            meta = next((tmp_path / "certs" / "acme").glob("*/account.json"))
            before = json.loads(meta.read_text())
            async with s.manager(s.settings(email="new-ops@example.test")) as manager:
                [status] = await manager.renew(HOST, force=True)
                assert status.state == "valid", status.last_error
            after = json.loads(meta.read_text())
            assert (after["uri"], after["email"]) == (before["uri"], "new-ops@example.test")
            assert "There are now 2 accounts" not in s.pebble.log_text
    run(body())
