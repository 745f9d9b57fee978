"""Which release a rollback starts from: the rules, over the release history.

`berth rollback APP` goes back to the newest release before the live one that was
live once (superseded); `berth rollback APP vN` to vN, which must have gone live
(live or superseded) and have an image. Anything else is refused with the reason.
"""

from __future__ import annotations

from agent.errors import BerthError
from agent.releases import Release, ReleaseState
from agent.store.releases import ReleaseStore

_WENT_LIVE = (ReleaseState.SUPERSEDED, ReleaseState.LIVE)


def rollback_source(
    releases: ReleaseStore, app: str, live: Release, number: int | None
) -> Release:
    """The release whose image and config a rollback of `app` (live: `live`) uses."""
    if number is None:
        earlier = [r for r in releases.recent(app)
                   if r.number < live.number and r.state is ReleaseState.SUPERSEDED]
        if not earlier:
            raise BerthError(f"{app} has no earlier successful release to roll back to")
        return earlier[0]
    source = releases.get(app, number)
    if source.state not in _WENT_LIVE or not source.image:
        raise BerthError(f"{source.version} of {app} never went live; pick a release "
                         "that did (berth releases)")
    return source
