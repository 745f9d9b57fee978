"""Writing down each ACME attempt's outcome, so backoff and limits survive restarts.

Every order placed is counted (per directory and name, for the rate limits); a success
resets the backoff and notes the issuance; a failure schedules the next attempt through
`policy.after_failure` (honouring a CA's Retry-After) and is logged louder once the
served certificate is near its end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from agent.certs import policy
from agent.certs.errors import AcmeFailure, DryRunFailed, RateLimited
from agent.certs.serving import Held
from agent.certs.settings import AcmeSettings
from agent.certs.state import CertState

log = logging.getLogger(__name__)


class AttemptLog:
    """The attempts' records in the database, as the manager's attempts end."""

    def __init__(
        self, state: CertState, settings: AcmeSettings, clock: Callable[[], float]
    ) -> None:
        self._state = state
        self._settings = settings
        self._clock = clock

    def order_placed(self, directory: str, domain: str) -> None:
        record = self._state.attempts(directory, domain)
        self._state.save_attempts(directory, domain, replace(record, orders=record.orders + 1))

    def succeeded(self, directory: str, domain: str, held: Held) -> None:
        record = self._state.attempts(directory, domain)
        self._state.save_attempts(directory, domain, replace(
            record, attempts=policy.Attempts(), last_error=None, last_issued_at=self._clock(),
            issued=record.issued + 1, ari_time=None, ari_next_check=None))
        log.info("certificate obtained domain=%s serial=%s not_after=%d", domain,
                 held.info.serial, held.info.not_after)

    def failed(
        self, directory: str, domain: str, failure: AcmeFailure, held: Held | None
    ) -> None:
        """Back off from `domain`; `held` is the certificate served meanwhile, if any."""
        now = self._clock()
        record = self._state.attempts(directory, domain)
        attempts = policy.after_failure(record.attempts, now, self._settings,
                                        retry_after=_retry_after(failure),
                                        cert=held.times if held else None)
        self._state.save_attempts(directory, domain, replace(
            record, attempts=attempts, last_error=str(failure)))
        emergency = held is not None and now >= policy.emergency_time(held.times)
        level = logging.ERROR if emergency else logging.WARNING
        log.log(level, "certificate attempt failed domain=%s failures=%d next_attempt=%d "
                "emergency=%s error=%s", domain, attempts.failures, attempts.next_attempt or 0,
                emergency, failure)


def _retry_after(failure: AcmeFailure) -> float | None:
    if isinstance(failure, RateLimited):
        return failure.retry_after
    if isinstance(failure, DryRunFailed) and isinstance(failure.cause, RateLimited):
        return failure.cause.retry_after
    return None
