"""Errors the image builder raises: each carries its data and renders to one line.

Subclasses of `agent.errors.BerthError`; the deploy worker catches `BuildError` and shows
`str(error)` to the pusher (for `BuildFailed`, followed by `log_tail`).
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import BerthError


class BuildError(BerthError):
    """Base of the builder's errors."""


class NoBuildpackDetected(BuildError):
    """Neither a Dockerfile nor any buildpack recognised the source tree."""

    def __init__(self, app: str, looked_for: tuple[str, ...]) -> None:
        super().__init__(
            f"{app}: cannot tell how to build this app; looked for: {'; '.join(looked_for)}"
        )
        self.app = app
        self.looked_for = looked_for


class InvalidSource(BuildError):
    """A file of the app (runtime.txt, package.json, ...) says something unusable."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem


class BuildpackBroken(BuildError):
    """A user buildpack's script failed, timed out or printed nonsense."""

    def __init__(self, buildpack: str, problem: str) -> None:
        super().__init__(f"buildpack {buildpack}: {problem}")
        self.buildpack = buildpack
        self.problem = problem


class NotEnoughDisk(BuildError):
    """Free space where Docker keeps images is below the configured minimum."""

    status = 507

    def __init__(self, path: Path, free_mb: int, needed_mb: int) -> None:
        super().__init__(
            f"not building: {path} has {free_mb} MiB free, builds need at least {needed_mb} MiB"
            " (remove old images or lower build.min_free_disk_mb)"
        )
        self.path = path
        self.free_mb = free_mb
        self.needed_mb = needed_mb


class BuildFailed(BuildError):
    """The image build itself failed at `step`; `log_tail` holds its last output lines.

    `cache_layer` is the untagged image of the last step that did succeed (kept by the
    engine as build cache, so the next push reuses it), "" when there is none.
    """

    def __init__(
        self, app: str, step: str, reason: str, log_tail: tuple[str, ...], cache_layer: str = ""
    ) -> None:
        where = f" at {step}" if step else ""
        super().__init__(f"{app}: build failed{where}: {reason}")
        self.app = app
        self.step = step
        self.reason = reason
        self.log_tail = log_tail
        self.cache_layer = cache_layer


class BuildTimedOut(BuildFailed):
    """The build ran past `build.timeout` and was stopped."""

    def __init__(
        self, app: str, step: str, timeout: float, log_tail: tuple[str, ...], cache_layer: str = ""
    ) -> None:
        reason = f"stopped after {timeout:g} s (build.timeout)"
        super().__init__(app, step, reason, log_tail, cache_layer)
        self.timeout = timeout
