"""When to renew, when to retry, when to scan: the manager's decisions as pure functions.

Times are epoch seconds passed in by the caller (an injected clock), so every rule here is
unit-tested without waiting. The rules:

- Renew when a third of the lifetime is left (half for certificates under 10 days), or at
  the CA's ACME Renewal Information (ARI) time when it offers one, whichever the CA says,
  but never later than the emergency point.
- Emergency: a tenth of the lifetime left. A failing domain then retries at least every
  `emergency_backoff_max` seconds instead of waiting out a long backoff.
- Backoff after a failure: `backoff_min`, doubling per consecutive failure, capped at
  `backoff_max`. A CA's Retry-After (rate limit) is a floor nothing overrides, not even a
  forced renewal or an emergency.
- Scans happen every `scan_interval` seconds, spread by +/- `scan_jitter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.certs.settings import AcmeSettings

DAY = 86400.0
SHORT_LIFETIME = 10 * DAY
EMERGENCY_FRACTION = 0.1
# Shortest sleep of the scan loop, whatever is due: the loop never spins.
MIN_SLEEP = 1.0


@dataclass(frozen=True)
class CertTimes:
    not_before: float
    not_after: float

    @property
    def lifetime(self) -> float:
        return max(self.not_after - self.not_before, 0.0)


@dataclass(frozen=True)
class Attempts:
    """A domain's failure record (persisted, so it survives a restart)."""

    failures: int = 0
    last_failure_at: float | None = None
    next_attempt: float | None = None  # backoff gate
    rate_limited_until: float | None = None  # the CA's Retry-After: a hard floor


Action = Literal["issue", "renew", "wait"]


@dataclass(frozen=True)
class Plan:
    action: Action
    at: float  # when: now for issue/renew; the time to look again for wait
    reason: str


def renewal_time(cert: CertTimes, ari_time: float | None = None) -> float:
    """When this certificate should be renewed."""
    emergency = emergency_time(cert)
    if ari_time is not None:
        return min(ari_time, emergency)
    fraction = 0.5 if cert.lifetime < SHORT_LIFETIME else 1 / 3
    return cert.not_after - cert.lifetime * fraction


def emergency_time(cert: CertTimes) -> float:
    return cert.not_after - cert.lifetime * EMERGENCY_FRACTION


def backoff_delay(failures: int, settings: AcmeSettings) -> float:
    """Seconds to wait after the `failures`-th consecutive failure (1 = first)."""
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 32)
    return float(min(settings.backoff_min * 2.0**exponent, settings.backoff_max))


def after_failure(
    previous: Attempts,
    now: float,
    settings: AcmeSettings,
    *,
    retry_after: float | None = None,
    cert: CertTimes | None = None,
) -> Attempts:
    """The failure record after one more failed attempt at `now`."""
    failures = previous.failures + 1
    delay = backoff_delay(failures, settings)
    if cert is not None and now >= emergency_time(cert):
        delay = min(delay, settings.emergency_backoff_max)
    limited = now + retry_after if retry_after is not None else previous.rate_limited_until
    if limited is not None and limited <= now:
        limited = None
    next_attempt = now + delay
    if limited is not None:
        next_attempt = max(next_attempt, limited)
    return Attempts(failures, now, next_attempt, limited)


def plan(
    cert: CertTimes | None,
    attempts: Attempts,
    now: float,
    settings: AcmeSettings,
    *,
    ari_time: float | None = None,
    manual: bool = False,
    force: bool = False,
) -> Plan:
    """What to do about one ACME domain at `now`.

    `manual` (someone asked) skips the backoff; `force` also renews a valid certificate.
    Neither skips a rate limit.
    """
    if attempts.rate_limited_until is not None and attempts.rate_limited_until > now:
        return Plan("wait", attempts.rate_limited_until, "rate limited by the CA")
    if cert is None:
        action: Action = "issue"
        reason = "no certificate yet"
    else:
        due = renewal_time(cert, ari_time)
        if now < due and not force:
            return Plan("wait", due, "valid")
        action = "renew"
        reason = "forced" if force and now < due else "due for renewal"
    if not (manual or force):
        gate = _backoff_gate(cert, attempts, now, settings)
        if gate is not None and gate > now:
            return Plan("wait", gate, f"backing off after {attempts.failures} failure(s)")
    return Plan(action, now, reason)


def _backoff_gate(
    cert: CertTimes | None, attempts: Attempts, now: float, settings: AcmeSettings
) -> float | None:
    gate = attempts.next_attempt
    if gate is None or cert is None or now < emergency_time(cert):
        return gate
    if attempts.last_failure_at is not None:
        gate = min(gate, attempts.last_failure_at + settings.emergency_backoff_max)
    return gate


def scan_delay(settings: AcmeSettings, rand: float) -> float:
    """Seconds to the next scan; `rand` is uniform in [0, 1)."""
    spread = settings.scan_jitter * (2.0 * rand - 1.0)
    return max(settings.scan_interval * (1.0 + spread), MIN_SLEEP)


def sleep_until(next_scan: float, plans_at: list[float], now: float) -> float:
    """Seconds the scan loop sleeps: to the next scan or the earliest planned time."""
    target = min([next_scan, *plans_at])
    return max(target - now, MIN_SLEEP)
