"""What a deploy asks of the certificate manager, and how it tells a pusher about it.

The deploy side declares the certificates it wants for an app's hosts
(`CertificateDesire`) and reads their states back to say, in a push's last lines, why a
host is not yet served over HTTPS (`https_pending`, pure). `agent.certs.manager`
satisfies both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.certs.status import CertStatus


class CertificateStates(Protocol):
    """Where the push's last lines learn why a host has no HTTPS yet."""

    def status(self, app: str | None = None) -> Sequence[CertStatus]: ...


class CertificateDesire(CertificateStates, Protocol):
    """What the deploy side tells the certificate manager."""

    def set_app_domains(self, app: str, domains: Sequence[str], *, acme: bool = True) -> None:
        ...

    def forget_app(self, app: str) -> None: ...


PENDING = {"acme-disabled": "ACME is off on this server (acme.enabled)",
           "http-only": "ACME is off for this app", "issuing": "the certificate is being issued",
           "pending": "the certificate is not issued yet"}


def https_pending(states: Sequence[CertStatus], host: str) -> str:
    """Why `host` is served over plain HTTP, in a few words (pure)."""
    status = next((s for s in states if s.domain == host), None)
    if status is None:
        return "no certificate is wanted for it yet"
    if status.last_error:
        return f"the last attempt failed: {status.last_error}"
    return PENDING.get(status.state, f"the certificate is {status.state}")
