"""The small interfaces the certificate manager needs from its neighbours.

The proxy satisfies `ChallengeResponder` (its `challenges`) and `CertificateSink` (its
`certificates`); `agent.certs.acme_client.AcmeIssuer` satisfies `Issuer`. Tests pass
small hand-written fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


class ChallengeResponder(Protocol):
    """Answers `/.well-known/acme-challenge/TOKEN` on the HTTP port, for any host."""

    def set(self, token: str, key_authorization: str) -> None: ...

    def remove(self, token: str) -> None: ...


class CertificateSink(Protocol):
    """Serves certificates by SNI name; `put` validates the pair and swaps it in live."""

    def put(self, hostname: str, fullchain_pem: bytes, key_pem: bytes) -> None: ...

    def remove(self, hostname: str) -> None: ...

    def names(self) -> Collection[str]: ...


@dataclass(frozen=True)
class RenewalInfo:
    """The CA's ARI answer: when to renew (None: no ARI) and when to ask again."""

    renew_at: float | None
    next_check: float


class Issuer(Protocol):
    """Gets certificates from an ACME directory (one order per call)."""

    async def issue(
        self,
        directory: str,
        domain: str,
        csr_pem: bytes,
        challenges: ChallengeResponder,
        *,
        on_order_placed: Callable[[], None] = ...,
    ) -> bytes:
        """The full chain PEM for `domain`, or an `AcmeFailure`."""
        ...

    async def renewal_info(self, directory: str, chain_pem: bytes) -> RenewalInfo: ...


# Resolves a host name to its addresses (A and AAAA); [] when it does not resolve.
Resolver = Callable[[str], Awaitable[Sequence[str]]]


# How the manager's scan loop sleeps: until the event is set or the seconds have passed
# (`manager.wake_or_timeout`; tests pass one driven by a fake clock).
Sleeper = Callable[[asyncio.Event, float], Awaitable[None]]
