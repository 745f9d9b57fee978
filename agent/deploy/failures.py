"""Recording a failed release: the one place a deploy's failure is written down.

Any operation that makes a release runs it through `FailureRecorder.guard`: a failure
marks the release failed (unless it went live meanwhile), records a `ReleaseFailed`
event, tells the pusher why and whether the previous release keeps serving, and becomes
a `DeployFailed`; a cancellation is recorded the same way and passed on as it is. The
release's build log is flushed either way. This is the deploy's task boundary: the only
place where an unexpected error is caught broadly (logged with its traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from agent.deploy.errors import DeployFailed
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.releases import Release, ReleaseState
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore

log = logging.getLogger(__name__)

_SETTLED = (ReleaseState.LIVE, ReleaseState.SUPERSEDED, ReleaseState.FAILED)


def reason_of(exc: BaseException) -> str:
    """What the pusher is told about `exc` (first line: the summary)."""
    if isinstance(exc, asyncio.CancelledError):
        return "interrupted (the push was cancelled)"
    if isinstance(exc, BerthError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


class FailureRecorder:
    """Marks releases failed in the store and says so to the pusher."""

    def __init__(self, releases: ReleaseStore, events: EventStore) -> None:
        self._releases = releases
        self._events = events

    async def guard(self, release: Release, out: DeployOutput, work: Awaitable[Release]) -> Release:
        """Await `work` (which makes `release` live); record its failure if it fails."""
        try:
            return await work
        except BaseException as exc:
            failure = self.record(release, exc, out)
            if isinstance(exc, Exception):
                raise failure from exc
            raise  # cancelled: recorded, then passed on as it is
        finally:
            self.flush_log(release, out)

    def record(self, release: Release, exc: BaseException, out: DeployOutput) -> DeployFailed:
        """Mark `release` failed and tell the pusher why; returns the error to raise."""
        if not isinstance(exc, (BerthError, asyncio.CancelledError)):
            log.error("deploy crashed app=%s release=%s", release.app, release.number,
                      exc_info=exc)
        reason = reason_of(exc)
        current = self._releases.get(release.app, release.number)
        if current.state not in _SETTLED:
            self._releases.move(current, ReleaseState.FAILED, error=reason)
        self._events.record(release.app, "ReleaseFailed", f"{release.version}: {reason}")
        first, *rest = reason.splitlines() or [""]
        out.heading(f"{release.version} failed: {first}")
        for line in rest:
            out.detail(line)
        if self._releases.live(release.app) is not None:
            out.heading(f"The previous release keeps serving {release.app}")
        return DeployFailed(release.app, release.version, first)

    def flush_log(self, release: Release, out: DeployOutput) -> None:
        """Hand the lines not yet stored to the release's build log."""
        text = out.take_unflushed()
        if text:
            self._releases.append_log(release.app, release.number, text)
