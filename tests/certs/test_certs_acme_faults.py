"""The real ACME adapter and manager against a CA that refuses or cannot be reached.

Pebble has no rate limits, so the 429 `rateLimited` answer comes from `RefusingCA`
(tests/certs/fake_ca.py), a fake that speaks just enough ACME. An unreachable CA is a
closed port. Everything else (adapter, manager, database, files) is real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent.certs.manager import CertificateManager
from agent.certs.settings import AcmeSettings
from agent.certs.state import SCHEMA
from agent.certs.status import render
from agent.store.db import Database
from tests.certs.fake_ca import RefusingCA
from tests.certs.fakes import MemoryChallenges, MemorySink
from tests.certs.pebble import free_port

RATE_LIMITED = {"type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many certificates (5) already issued for this exact set of "
                          "identifiers in the last 168h0m0s"}


@asynccontextmanager
async def manager_for(tmp: Path, directory: str) -> AsyncIterator[CertificateManager]:
    db = Database.open(tmp / "berth.db", [SCHEMA])
    settings = AcmeSettings(directory=directory, preflight=False, staging_dry_run=False,
                            network_timeout=3.0, order_timeout=10.0, scan_interval=1.0)
    manager = CertificateManager(settings, tmp / "certs", db, MemoryChallenges(), MemorySink())
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()
        db.close()


async def until_failing(manager: CertificateManager, app: str = "web") -> None:
    deadline = time.monotonic() + 15
    while manager.status(app)[0].state != "failing":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


def test_rate_limit_retry_after_is_honoured_and_shown(tmp_path: Path) -> None:
    async def body() -> None:
        ca = await RefusingCA(429, RATE_LIMITED, "3600").start()
        try:
            async with manager_for(tmp_path, ca.directory) as manager:
                manager.set_app_domains("web", ["www.example.com"])
                await until_failing(manager)
                [status] = manager.status()
                assert "rate limited by the CA: too many certificates (5)" in status.last_error
                assert "(retry after 3600 s)" in status.last_error
                assert status.next_attempt == pytest.approx(time.time() + 3600, abs=10)
                assert "rate limited" in render(manager.status())
                await manager.renew("web", force=True)  # even forced: no new order
                await asyncio.sleep(2.2)  # scans keep running
                assert ca.order_requests == 1
            async with manager_for(tmp_path, ca.directory):  # nor after a restart
                await asyncio.sleep(1.5)
                assert ca.order_requests == 1
            assert ca.account_requests == 1  # the account was created once, then reused
        finally:
            await ca.stop()
    asyncio.run(body())


def test_rate_limit_as_http_date_and_without_a_header(tmp_path: Path) -> None:
    async def body() -> None:
        when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 7200))
        for retry_after, expected in ((when, 7200), (None, 300)):  # no header: backoff only
            ca = await RefusingCA(429, RATE_LIMITED, retry_after).start()
            try:
                async with manager_for(tmp_path / str(expected), ca.directory) as manager:
                    manager.set_app_domains("web", ["www.example.com"])
                    await until_failing(manager)
                    [status] = manager.status()
                    assert status.next_attempt == pytest.approx(time.time() + expected, abs=10)
            finally:
                await ca.stop()
    asyncio.run(body())


def test_order_refused_by_the_ca_is_recorded(tmp_path: Path) -> None:
    problem = {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
               "detail": "Error creating new order :: Cannot issue for \"www.example.com\""}

    async def body() -> None:
        ca = await RefusingCA(400, problem, None).start()
        try:
            async with manager_for(tmp_path, ca.directory) as manager:
                manager.set_app_domains("web", ["www.example.com"])
                await until_failing(manager)
                [status] = manager.status()
                assert "order failed: creating the order: rejectedIdentifier: Error creating" in (
                    status.last_error)
                assert "\n" not in status.last_error
        finally:
            await ca.stop()
    asyncio.run(body())


def test_unreachable_ca_is_recorded_with_the_next_attempt(tmp_path: Path) -> None:
    async def body() -> None:
        directory = f"http://127.0.0.1:{free_port()}/dir"  # nothing listens there
        async with manager_for(tmp_path, directory) as manager:
            manager.set_app_domains("web", ["www.example.com"], acme=True)
            manager.set_app_domains("other", ["other.example.com"], acme=False)
            await until_failing(manager)
            status = manager.status("web")[0]
            assert status.last_error == (f"www.example.com: ACME server {directory} unreachable:"
                                         " [Errno 111] Connection refused")
            assert status.next_attempt == pytest.approx(time.time() + 300, abs=10)
            assert manager.status("other")[0].state == "http-only"  # the rest is untouched
    asyncio.run(body())
