"""Errors of the certificate manager: each carries its data and renders to one line.

`AcmeFailure` and its subclasses are what an order can end in; the manager records their
`str()` as the domain's last error and schedules the next attempt from them (a
`RateLimited` carries the CA's Retry-After). The rest refuse bad input from a user.
"""

from __future__ import annotations

from agent.errors import BerthError


class CertificateError(BerthError):
    """Base of the certificate manager's errors."""


class InvalidPem(CertificateError):
    """A PEM certificate or key given by a user does not parse."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"invalid {what}: {detail}")
        self.what = what
        self.detail = detail


class KeyMismatch(CertificateError):
    """The private key does not belong to the certificate."""

    def __init__(self) -> None:
        super().__init__("the private key does not match the certificate")


class NamesNotCovered(CertificateError):
    """A custom certificate does not cover every domain of its app."""

    def __init__(self, app: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            f"the certificate does not cover {', '.join(missing)} (domains of {app})"
        )
        self.app = app
        self.missing = missing


class AcmeOff(CertificateError):
    """A renewal was asked for where ACME is turned off."""

    status = 409

    def __init__(self, target: str) -> None:
        super().__init__(f"ACME is off for {target}")
        self.target = target


class AcmeFailure(CertificateError):
    """An attempt to get a certificate failed; the domain keeps its current one."""

    status = 502

    def __init__(self, domain: str, problem: str) -> None:
        super().__init__(f"{domain}: {problem}")
        self.domain = domain
        self.problem = problem


class CaUnreachable(AcmeFailure):
    def __init__(self, domain: str, directory: str, detail: str) -> None:
        super().__init__(domain, f"ACME server {directory} unreachable: {detail}")
        self.directory = directory
        self.detail = detail


class ChallengeFailed(AcmeFailure):
    def __init__(self, domain: str, detail: str) -> None:
        super().__init__(domain, f"HTTP-01 challenge failed: {detail}")
        self.detail = detail


class OrderFailed(AcmeFailure):
    def __init__(self, domain: str, detail: str) -> None:
        super().__init__(domain, f"order failed: {detail}")
        self.detail = detail


class OrderTimeout(AcmeFailure):
    def __init__(self, domain: str, stage: str, seconds: float) -> None:
        super().__init__(domain, f"{stage} did not finish within {seconds:g} s")
        self.stage = stage
        self.seconds = seconds


class RateLimited(AcmeFailure):
    """The CA answered 429 / rateLimited; `retry_after` is seconds from then, if given."""

    status = 429

    def __init__(self, domain: str, detail: str, retry_after: float | None) -> None:
        wait = f" (retry after {retry_after:.0f} s)" if retry_after is not None else ""
        super().__init__(domain, f"rate limited by the CA: {detail}{wait}")
        self.detail = detail
        self.retry_after = retry_after


class PreflightFailed(AcmeFailure):
    """The name does not lead to this host, so an order would only burn rate limit."""

    def __init__(self, domain: str, detail: str) -> None:
        super().__init__(domain, f"preflight: {detail}")
        self.detail = detail


class DryRunFailed(AcmeFailure):
    """The staging dry run after a failure did not pass; production was not tried."""

    def __init__(self, domain: str, cause: AcmeFailure) -> None:
        super().__init__(domain, f"staging dry run failed: {cause.problem}")
        self.cause = cause
