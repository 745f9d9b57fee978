"""Passive health of one upstream: up, or down until a retry time that backs off (pure).

No probe of its own: the proxy learns from the connections it opens. A connect that is
refused or reset marks the upstream down; while down it gets no request unless every
upstream of the route is down, except one request per retry time, which tries it again
(and, should it fail, is sent on to another upstream, so trying costs only latency).
Each failure in a row doubles the wait, up to a cap; the first success brings it back.
Callers log the transitions the methods report, so the log gets one line per change.
"""

from __future__ import annotations


class Health:
    __slots__ = ("delay", "down", "failures", "retry_at", "since")

    def __init__(self) -> None:
        self.down = False
        self.failures = 0  # failed connects in a row
        self.delay = 0.0  # the wait between tries, while down
        self.retry_at = 0.0  # loop time from which one request may try it again
        self.since = 0.0  # when it went down

    def eligible(self, now: float) -> bool:
        """Whether a request may go to this upstream now (up, or due for a retry)."""
        return not self.down or self.retry_at <= now

    def trying(self, now: float) -> None:
        """A request goes to a down upstream to try it: the next one waits its turn."""
        if self.down:
            self.retry_at = now + self.delay

    def failed(self, now: float, backoff: float, cap: float) -> bool:
        """A connect failed; True when this turned the upstream down."""
        self.failures += 1
        self.delay = min(cap, backoff * (1 << min(self.failures - 1, 20)))
        self.retry_at = now + self.delay
        if self.down:
            return False
        self.down = True
        self.since = now
        return True

    def succeeded(self) -> bool:
        """A connect succeeded; True when this brought the upstream back."""
        self.failures = 0
        if not self.down:
            return False
        self.down = False
        return True
