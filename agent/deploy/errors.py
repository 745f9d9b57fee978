"""The deploy package's errors: what a failed operation on an app tells its caller.

The API maps them to HTTP statuses through `BerthError.status`; each carries the data
that explains it.
"""

from __future__ import annotations

from agent.errors import BerthError


class DeployFailed(BerthError):
    """A release did not go live; the previous one (if any) keeps serving."""

    status = 422

    def __init__(self, app: str, version: str, reason: str) -> None:
        super().__init__(f"{app} {version} failed: {reason}")
        self.app = app
        self.version = version
        self.reason = reason


class NothingToRelease(BerthError):
    """The operation needs a live release and the app has none yet."""

    status = 409

    def __init__(self, app: str) -> None:
        super().__init__(f"{app} has no live release yet: push to deploy it first")
        self.app = app


class ReleaseCommandFailed(BerthError):
    """The release phase's command exited non-zero; the release is aborted."""

    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"release command exited with code {code}")
        self.command = command
        self.code = code


class ImagePruned(BerthError):
    """A rollback's source image was removed by pruning."""

    def __init__(self, version: str, keep: int) -> None:
        super().__init__(f"the image of {version} was pruned "
                         f"(deploy.keep_releases keeps the last {keep})")
        self.version = version


class BaseMoved(BerthError):
    """A push was based on a commit its branch no longer holds (another push came first)."""

    status = 409

    def __init__(self, app: str, ref: str, old: str, current: str) -> None:
        branch = ref.removeprefix("refs/heads/")
        super().__init__(
            f"{branch} of {app} moved to {current[:7]} while this push (based on {old[:7]}) "
            "waited: fetch, merge and push again")
        self.app = app
        self.ref = ref
        self.old = old
        self.current = current
