"""Releases: the immutable, numbered unit of what runs (image + config + processes).

A release moves through named states by `transition()`, which refuses illegal moves; the
store persists a release only through it. Heroku's model: a build makes a release, so do
a config change and a rollback (which copies an older release's image and config into a
new number).

    pending ──> building ──> releasing ──> starting ──> live ──> superseded
       │            │            │             │
       └────────────┴────────────┴─────────────┴──> failed

`pending -> releasing` is the path of releases that reuse an image (config changes,
rollbacks, restarts). Unfinished states found at boot mean the agent died mid-deploy:
the reconciler marks them failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum


class ReleaseState(str, Enum):
    PENDING = "pending"
    BUILDING = "building"
    RELEASING = "releasing"
    STARTING = "starting"
    LIVE = "live"
    SUPERSEDED = "superseded"
    FAILED = "failed"


_ALLOWED: Mapping[ReleaseState, frozenset[ReleaseState]] = {
    ReleaseState.PENDING: frozenset(
        {ReleaseState.BUILDING, ReleaseState.RELEASING, ReleaseState.FAILED}
    ),
    ReleaseState.BUILDING: frozenset({ReleaseState.RELEASING, ReleaseState.FAILED}),
    ReleaseState.RELEASING: frozenset({ReleaseState.STARTING, ReleaseState.FAILED}),
    ReleaseState.STARTING: frozenset({ReleaseState.LIVE, ReleaseState.FAILED}),
    ReleaseState.LIVE: frozenset({ReleaseState.SUPERSEDED}),
    ReleaseState.SUPERSEDED: frozenset(),
    ReleaseState.FAILED: frozenset(),
}

UNFINISHED = frozenset(
    {ReleaseState.PENDING, ReleaseState.BUILDING, ReleaseState.RELEASING, ReleaseState.STARTING}
)


class IllegalTransition(Exception):
    """A programming error: the deploy code asked for a move the table forbids."""

    def __init__(self, app: str, number: int, current: ReleaseState, wanted: ReleaseState):
        super().__init__(f"release {app} v{number}: cannot go from {current.value} to {wanted.value}")


@dataclass(frozen=True)
class Release:
    app: str
    number: int
    state: ReleaseState
    description: str
    created_at: float
    git_sha: str = ""
    image: str = ""  # image id (sha256:...) once built or copied
    image_tag: str = ""
    builder: str = ""
    # The app's config vars as they were when the release was made.
    config: Mapping[str, str] = field(default_factory=dict)
    # Process types and commands (Procfile, or the buildpack's default); "" = image CMD.
    processes: Mapping[str, str] = field(default_factory=dict)
    release_command: str = ""
    # app.json as found in the pushed tree ("" when absent).
    app_json: str = ""
    finished_at: float | None = None
    error: str = ""

    @property
    def version(self) -> str:
        return f"v{self.number}"


def transition(
    release: Release, wanted: ReleaseState, *, now: float, error: str = ""
) -> Release:
    """Return `release` in state `wanted`, or raise `IllegalTransition`."""
    if wanted not in _ALLOWED[release.state]:
        raise IllegalTransition(release.app, release.number, release.state, wanted)
    finished = now if wanted in (ReleaseState.LIVE, ReleaseState.FAILED) else release.finished_at
    return replace(release, state=wanted, finished_at=finished, error=error or release.error)
