"""Small hand-written stand-ins for the manager's neighbours, for unit tests.

`FakeTime` is a clock that moves only when a test advances it, with the manager's
sleeper on it, so hours of backoff and renewal run in milliseconds. `MemorySink` and
`MemoryChallenges` stand in for the proxy's certificate store and token
map (the proxy's real ones are used by the end-to-end tests). `ScriptedIssuer` stands in
for the CA where a test needs to choose the outcome (a failure, a Retry-After, an ARI
time) without waiting: it signs real certificates with a throwaway CA.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.certs.errors import AcmeFailure
from agent.certs.interfaces import ChallengeResponder, RenewalInfo
from agent.certs.keys import PrivateKey, check_pair, generate_key, key_to_pem


class ThrowawayCA:
    """A throwaway CA that signs leaf certificates for given names and times."""

    def __init__(self, name: str = "berth unit-test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])

    def sign(self, public_key: object, names: Sequence[str], not_before: float,
             not_after: float) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.name)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
            .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def issue_pair(self, names: Sequence[str], not_before: float, not_after: float,
                   key_type: str = "ecdsa-p256") -> tuple[bytes, bytes]:
        key: PrivateKey = generate_key(key_type)
        return self.sign(key.public_key(), names, not_before, not_after), key_to_pem(key)


@dataclass
class MemorySink:
    """The proxy's certificate store, in memory; `put` validates like the proxy does."""

    certs: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    puts: list[str] = field(default_factory=list)

    def put(self, hostname: str, fullchain_pem: bytes, key_pem: bytes) -> None:
        check_pair(fullchain_pem, key_pem)
        self.certs[hostname] = (fullchain_pem, key_pem)
        self.puts.append(hostname)

    def remove(self, hostname: str) -> None:
        self.certs.pop(hostname, None)

    def names(self) -> Sequence[str]:
        return sorted(self.certs)

    def serial(self, hostname: str) -> str:
        chain = self.certs[hostname][0]
        return format(x509.load_pem_x509_certificate(chain).serial_number, "x")


@dataclass
class MemoryChallenges:
    tokens: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)

    def set(self, token: str, key_authorization: str) -> None:
        self.tokens[token] = key_authorization
        self.history.append(token)

    def remove(self, token: str) -> None:
        self.tokens.pop(token, None)


Outcome = Callable[[str, str], AcmeFailure | None]  # (directory, domain) -> failure or None


@dataclass
class ScriptedIssuer:
    """An `Issuer` whose answers a test scripts; it counts every order per directory."""

    clock: Callable[[], float]
    lifetime: float = 90 * 86400.0
    fail: Outcome = lambda directory, domain: None
    ari_after: float | None = None  # ARI: renew this long after a cert's not_before
    ca: ThrowawayCA = field(default_factory=ThrowawayCA)
    orders: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    ari_checks: int = 0
    issued_at: list[float] = field(default_factory=list)

    async def issue(self, directory: str, domain: str, csr_pem: bytes,
                    challenges: ChallengeResponder, *,
                    on_order_placed: Callable[[], None] = lambda: None) -> bytes:
        self.orders.append((directory, domain))
        on_order_placed()
        token = f"token-{len(self.orders)}"
        challenges.set(token, "key-authorization")
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            failure = self.fail(directory, domain)
            if failure is not None:
                raise failure
            csr = x509.load_pem_x509_csr(csr_pem)
            now = self.clock()
            self.issued_at.append(now)
            return self.ca.sign(csr.public_key(), [domain], now, now + self.lifetime)
        finally:
            challenges.remove(token)

    async def renewal_info(self, directory: str, chain_pem: bytes) -> RenewalInfo:
        self.ari_checks += 1
        if self.ari_after is None:
            return RenewalInfo(None, self.clock() + 6 * 3600)
        cert = x509.load_pem_x509_certificate(chain_pem)
        return RenewalInfo(cert.not_valid_before_utc.timestamp() + self.ari_after,
                           self.clock() + 6 * 3600)

    def count(self, domain: str, directory: str | None = None) -> int:
        return sum(1 for d, n in self.orders if n == domain and directory in (None, d))


class FakeTime:
    """A clock (call it) that moves only in `advance`, and `sleep`, the certificate
    manager's Sleeper on it. `busy` tells whether work started by the clock's sleeper
    is still under way (it runs on real threads: the clock waits for it at each step)."""

    def __init__(self, busy: Callable[[], bool] = lambda: False) -> None:
        self.now = time.time()  # certificates it dates are real X.509 times
        self.busy = busy
        self._sleepers: list[tuple[float, asyncio.Event, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, wake: asyncio.Event, delay: float) -> None:
        """Until `wake` is set or this clock has moved `delay` seconds on."""
        if wake.is_set() or delay <= 0:
            return
        entry = (self.now + delay, wake, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({woken, entry[2]}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            self._sleepers.remove(entry)

    async def advance(self, seconds: float, *, step: float = 0.05) -> None:
        """Move on by `seconds`, `step` at a time; at each step what woke runs until it
        sleeps again and nothing is busy."""
        end = self.now + seconds
        await self._settle()
        while self.now < end:
            self.now = min(end, self.now + step)
            for at, _, due in self._sleepers:
                if at <= self.now and not due.done():
                    due.set_result(None)
            await self._settle()

    async def until(self, check: Callable[[], bool], limit: float, *, step: float = 0.05) -> None:
        """Advance until `check()` holds; AssertionError past `limit` seconds."""
        end = self.now + limit
        while not check():
            if self.now >= end:
                raise AssertionError(f"condition not met within {limit} s of the fake clock")
            await self.advance(step, step=step)

    async def _settle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)
        while self.busy() or not any(not wake.is_set() and not due.done()
                                     for _, wake, due in self._sleepers):
            if time.monotonic() > deadline:
                raise AssertionError("nothing went back to sleep on the fake clock")
            await asyncio.sleep(0.001)
