"""Two pushes to one app's branch: the second must be based on what the first left.

git checks a push's old value of the branch only when it moves the ref, after the
pre-receive hook (the deploy) has run. Two pushes based on the same commit would both
deploy, one after the other under the app's lock, and git would then refuse the second
ref update: the branch says A while B's code serves. So a push says what it expects the
branch to hold (`PushBase`: git's old value), and after taking the app's lock the deploy
checks it, before building, as git itself would.

The first push's ref update happens just after its deploy returns, possibly after the
second push took the lock: `BranchGuard` remembers what a deployed push is about to
write and, when the branch does not hold it yet, waits briefly for git to write it (if
git never does, that push's update failed and the branch is what it reads).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent import repos
from agent.deploy.errors import BaseMoved
from agent.hostfiles import UnsafePath

ZERO = "0" * 40  # git's old value of a branch that does not exist yet
SETTLE = 5.0  # seconds a pending ref update is waited for
READ_TIMEOUT = 30.0  # seconds `git rev-parse` may take (a stuck disk: the push goes on)

RefReader = Callable[[Path, str], Awaitable["str | None"]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushBase:
    """The branch a push updates in the app's bare repository, and its old value."""

    repo: Path
    ref: str
    old: str


async def read_ref(repo: Path, ref: str) -> str | None:
    """The commit `ref` holds in `repo`; ZERO when there is no such branch; None when
    git cannot tell (the push then goes on unchecked, as git will still check it)."""
    try:  # as the repository's owner: never root on a repository the berth user owns
        result = await asyncio.to_thread(
            repos.git_as_owner, repo, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            capture_output=True, timeout=READ_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("branch not read in %gs repo=%s ref=%s", READ_TIMEOUT, repo, ref)
        return None
    except (OSError, UnsafePath) as exc:
        log.warning("branch not readable repo=%s ref=%s error=%s", repo, ref, exc)
        return None
    if result.returncode == 0:
        return result.stdout.decode("ascii", "replace").strip()
    error = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode == 1 and not error:
        return ZERO
    log.warning("branch not readable repo=%s ref=%s error=%s", repo, ref, error[-200:])
    return None


class BranchGuard:
    """Checks pushes' bases; remembers the ref updates deployed pushes are about to make."""

    def __init__(self, read: RefReader = read_ref, settle: float = SETTLE) -> None:
        self._read = read
        self._settle = settle
        self._pending: dict[tuple[str, str], str] = {}  # (app, ref) -> commit to be written

    async def check(self, app: str, base: PushBase) -> None:
        """BaseMoved unless the branch holds (or is about to hold) `base.old`."""
        current = await self._read(base.repo, base.ref)
        pending = self._pending.pop((app, base.ref), None)
        deadline = time.monotonic() + self._settle
        while pending is not None and current != pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            current = await self._read(base.repo, base.ref)
        if current is not None and current != base.old:
            raise BaseMoved(app, base.ref, base.old, current)

    def deployed(self, app: str, base: PushBase, new: str) -> None:
        """A push based on `base` deployed `new`: git is about to move the branch there."""
        self._pending[(app, base.ref)] = new

    def forget(self, app: str) -> None:
        for key in [k for k in self._pending if k[0] == app]:
            del self._pending[key]
