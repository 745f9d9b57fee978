"""Early start: a push's new code starts while the engine commits its image's last layer.

A buildpack build ends with one step that copies the pushed tree into /app
(`dockerfile.ends_with_code_copy`); on a code-only push every step before it is cached,
and committing that last layer is most of the build (~0.1 s). When the builder
announces the image the step runs on (`CodeBase`), the deployer starts the new
instances from that image at once, with the tree extracted into /app as the step lays
it (`agent.build.code_archive`, owned by the app user), and checks them while the build
finishes. Traffic moves only once the build succeeded and its image is exactly that base
plus the tree (the image's parent is the base): the instances then run the same files
as the release's image, which every later start (restart, scale, the reconciler) uses.
Otherwise the early instances are removed and the release starts from its image as
usual. Heroku runs dynos the same way: a stack image plus the app's slug.

Not for every deploy: an app with a release command (it must run before any instance
starts), with persistent storage mounted inside /app (extracting the tree there would
write into the mounted host directory) or with a tree over MAX_CODE_BYTES deploys the
usual way, as does any push whose early start cannot be prepared.

This module holds the pure rules; `KnownBases`, each app's last announced base;
`AppUserIds`, which reads the app user's numeric ids
from a base image once (the tree's owner in the archive must be numeric); and
`EarlyStart`, one push's early start, whose one entry point is `run`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol

from agent.build import APP_DIR, APP_USER, CodeBase, write_code_archive
from agent.deploy.building import Built
from agent.deploy.output import DeployOutput
from agent.deploy.progress import Progress
from agent.deploy.pushed import PushedTree, complete_formation
from agent.deploy.rollout import Rollout
from agent.deploy.rolloutplan import RolloutPlan
from agent.errors import BerthError
from agent.releases import Release, ReleaseState
from agent.store.apps import App
from agent.store.releases import ReleaseStore

log = logging.getLogger(__name__)

# Above this, a tree is copied into the image layer once rather than into each
# instance's writable layer (and the deploy waits for the image, as without early start).
MAX_CODE_BYTES = 64 * 1024 * 1024
_MEMO_SIZE = 64


def allowed(release_command: str, mounts: Sequence[tuple[str, str]]) -> bool:
    """Whether a deploy may start early: no release command, no storage inside /app."""
    inside = any(path == APP_DIR or path.startswith(APP_DIR + "/") for _, path in mounts)
    return not release_command and not inside


def parse_ids(passwd: str, group: str, user: str) -> tuple[int, int] | None:
    """`user`'s uid (from /etc/passwd) and the gid of the group named `user` (from
    /etc/group), as `COPY --chown=user:user` resolves them; None if either is missing."""
    uid = _field(passwd, user, 2)
    gid = _field(group, user, 2)
    return None if uid is None or gid is None else (uid, gid)


def _field(text: str, name: str, index: int) -> int | None:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > index and fields[0] == name and fields[index].isdigit():
            return int(fields[index])
    return None


class FileReader(Protocol):
    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]: ...


class AppUserIds:
    """The app user's (uid, gid) in base images, read from each image once."""

    def __init__(self, user: str) -> None:
        self._user = user
        self._known: dict[str, tuple[int, int] | None] = {}

    async def of(self, reader: FileReader, image: str) -> tuple[int, int] | None:
        if image not in self._known:
            files = await reader.read_files(image, ("/etc/passwd", "/etc/group"))
            text = {path: data.decode("utf-8", "replace") for path, data in files.items()}
            ids = parse_ids(text.get("/etc/passwd", ""), text.get("/etc/group", ""), self._user)
            if ids is None:
                log.info("no early start: image=%s has no user/group %s", image[:19], self._user)
            if len(self._known) >= _MEMO_SIZE:
                self._known.clear()
            self._known[image] = ids
        return self._known[image]


class EarlyEngine(FileReader, Protocol):
    """What an early start asks of the engine."""

    async def image_exists(self, reference: str) -> bool: ...

    async def image_parent(self, reference: str) -> str: ...


class NotTheBase(Exception):
    """An early start's build ended in an image other than its base plus the tree, or
    the start could not be prepared: the push goes on the usual way."""


@dataclass(frozen=True)
class Push:
    """The push an early start serves, and how the deployer makes a release live."""

    app: App
    release: Release
    source: Path
    pushed: PushedTree
    out: DeployOutput
    progress: Progress
    target: Callable[[Release, Mapping[str, int]], RolloutPlan]
    go_live: Callable[[Release, Mapping[str, int]], Release]


class KnownBases:
    """Each app's last announced code base: the app's next push creates its instances
    from it before that push's build confirms it."""

    def __init__(self) -> None:
        self._bases: dict[str, CodeBase] = {}

    def remember(self, app: str, base: CodeBase) -> None:
        self._bases[app] = base

    def take(self, app: str) -> CodeBase | None:
        """The base to predict (once: a failed prediction is not tried again)."""
        return self._bases.pop(app, None)


class EarlyStart:
    """One push's early start: from the base the app's last build announced (predicted,
    started once this build announces the same one), else from the base this build
    announces. The build tells `based`; `run` is the entry point."""

    def __init__(
        self, engine: EarlyEngine, rollout: Rollout, releases: ReleaseStore,
        user_ids: AppUserIds, push: Push, bases: KnownBases,
    ) -> None:
        self._engine = engine
        self._rollout = rollout
        self._releases = releases
        self._user_ids = user_ids
        self.push = push
        self._bases = bases
        self._predicted = bases.take(push.app.name)
        self._announced: asyncio.Future[CodeBase] = asyncio.get_running_loop().create_future()
        self._tried: set[str] = set()

    def based(self, base: CodeBase) -> None:
        """The build names the image its code step runs on (the app's next push
        predicts it)."""
        self._bases.remember(self.push.app.name, base)
        if not self._announced.done():
            self._announced.set_result(base)

    async def run(self, build: asyncio.Future[Built]) -> Release | None:
        """Make the push live from a base while `build` finishes; None when no early
        start went live (the caller then releases the build's image the usual way)."""
        either: set[asyncio.Future[Any]] = {self._announced, build}
        predicted = self._predicted
        if predicted is not None:

            async def confirm() -> None:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not self._announced.done() or self._announced.result().image != predicted.image:
                    raise NotTheBase()

            if (live := await self._attempt(predicted, build, confirm)) is not None:
                return live
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if self._announced.done() and self._announced.result().image not in self._tried:
            return await self._attempt(self._announced.result(), build, None)
        return None

    async def _attempt(
        self, base: CodeBase, build: asyncio.Future[Built],
        confirm: Callable[[], Awaitable[None]] | None,
    ) -> Release | None:
        """Start from `base` plus the pushed tree (the instances started once `confirm`
        returns); None when that is not what the build makes, or cannot be prepared."""
        self._tried.add(base.image)
        fd, name = tempfile.mkstemp(prefix="code-", suffix=".tar",
                                    dir=self.push.source.parent)
        code = Path(name)
        try:
            with os.fdopen(fd, "wb") as archive:
                await self._prepare(base, confirm is not None, archive)
            return await self._roll(base, build, confirm, code)
        except NotTheBase:
            return None  # as if there had been no early start
        finally:
            code.unlink(missing_ok=True)

    async def _prepare(self, base: CodeBase, predicted: bool, archive: IO[bytes]) -> None:
        """Write the tree's archive, owned by the app user of `base`; NotTheBase when
        that cannot be done (or is not worth it: a tree too big to copy per instance)."""
        try:
            if predicted and not await self._engine.image_exists(base.image):
                raise NotTheBase()  # the predicted base was pruned (its release failed, say)
            ids = await self._user_ids.of(self._engine, base.image)
            if ids is None:
                raise NotTheBase()
            await asyncio.to_thread(write_code_archive, self.push.source, ids[0], ids[1],
                                    APP_USER, archive)
        except (BerthError, OSError) as exc:
            log.warning("no early start app=%s error=%s", self.push.app.name, exc)
            raise NotTheBase() from exc
        if archive.tell() > MAX_CODE_BYTES:
            raise NotTheBase()

    async def _roll(
        self, base: CodeBase, build: asyncio.Future[Built],
        confirm: Callable[[], Awaitable[None]] | None, code: Path,
    ) -> Release:
        """Roll the early instances out; swap once the build's image proves to be
        exactly `base` plus the tree."""
        push = self.push
        attempt = _Attempt(self, base, build)
        early = replace(push.release, image=base.image, processes=attempt.processes,
                        app_json=push.pushed.app_json_text)
        target = replace(push.target(early, attempt.formation), code=code,
                         before_start=confirm)
        try:
            await self._rollout.roll(target, attempt.held.out, replace_all=True,
                                     progress=attempt)
        except NotTheBase:
            attempt.held.discard()
            raise
        except BerthError:
            instead = await attempt.cause()
            if instead is not None:
                raise instead from None
            raise
        return attempt.released()

    async def same_image(self, built: Release, base: CodeBase, processes: Mapping[str, str]) -> bool:
        """Whether the build's image is `base` plus the tree, running `processes`."""
        try:
            parent = await self._engine.image_parent(built.image)
        except BerthError as exc:
            log.warning("no early start app=%s error=%s", self.push.app.name, exc)
            return False
        return parent == base.image and built.processes == processes

    def confirmed(self, built: Release) -> Release:
        """The build made what runs: its release moves on to starting."""
        return self._releases.move(self._releases.move(built, ReleaseState.RELEASING),
                                   ReleaseState.STARTING)


class _Attempt(Progress):
    """One early roll-out from `base`, gated by the build: it must end in `base` plus
    the tree. The instances' lines are held until the build's have all been shown."""

    gated = True

    def __init__(self, early: EarlyStart, base: CodeBase, build: asyncio.Future[Built]) -> None:
        super().__init__()
        push = early.push
        self._early = early
        self._push = push
        self._base = base
        self._build = build
        self.processes = push.pushed.processes(base.default_processes)
        self.formation = complete_formation(push.pushed.formation(push.app, self.processes),
                                            self.processes)
        self.held = HeldLines(push.out)
        self._final: Release | None = None

    async def gate(self) -> None:
        try:
            built, _ = await asyncio.shield(self._build)
        except BaseException:
            self.held.release()  # what was started, then why it ends
            raise
        self._push.out.end_step()
        if not await self._early.same_image(built, self._base, self.processes):
            raise NotTheBase()
        self.held.release()
        self._final = self._early.confirmed(built)

    def committing(self) -> None:
        self._push.progress.committing()

    def swapped(self) -> None:
        assert self._final is not None  # the gate passed before the swap
        self.live = self._push.go_live(self._final, self.formation)

    async def cause(self) -> BaseException | None:
        """The roll-out failed: the error to raise instead (the build's own failure, or
        NotTheBase when the instances were not what the image is), else None."""
        await asyncio.wait({self._build})
        failure = None if self._build.cancelled() else self._build.exception()
        if failure is not None:
            self.held.release()
            return failure  # the build's failure is the cause
        if not await self._early.same_image(self._build.result()[0], self._base,
                                            self.processes):
            self.held.discard()  # the instances were not what the image is: try that
            return NotTheBase()
        self.held.release()
        return None


class HeldLines:
    """An output whose lines are held until `release`, then passed on to `out` (an
    early start's instance lines, after the build's)."""

    def __init__(self, out: DeployOutput) -> None:
        self._target = out
        self._held: list[str] | None = []
        self.out = DeployOutput(self._take)

    def _take(self, line: str) -> None:
        if self._held is None:
            self._target.raw(line)
        else:
            self._held.append(line)

    def discard(self) -> None:
        """Forget the held lines (an early start given up); later ones pass on."""
        self._held = None

    def release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            for line in held:
                self._target.raw(line)
