"""`Builder`: from a pushed tree to a tagged image, one awaited call.

Sequence: wait for a build slot (build.parallel), check free disk, detect the buildpack
and plan the Dockerfile, assemble the context in a temporary file, stream the engine
build under the deadline (build.timeout), return a `BuiltImage`. The blocking parts
(docker-py, buildpack scripts, file I/O) run in worker threads; `emit` is nevertheless
always called on the event loop's thread, in order, so callers need no locking.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, TypeVar

import docker
import docker.errors
from docker.utils import match_tag

from agent.build import ca, catalog
from agent.build.context import dockerfile_path, write_context
from agent.build.dockerfile import ends_with_code_copy
from agent.build.engine import Engine, EngineJob, cache_layer
from agent.build.errors import BuildError, BuildFailed, BuildTimedOut
from agent.build.model import BuildPlan, BuildRequest, BuiltImage, CodeBase
from agent.build.output import STEP_INDENT, BuildOutput
from agent.build.packs import PlanOptions
from agent.build.settings import BuildSettings
from agent.build.source import SourceTree
from agent.build.steplog import StepRecord
from agent.names import check_app

log = logging.getLogger(__name__)
T = TypeVar("T")

TITLES = {
    "python": "Python app",
    "node": "Node.js app",
    "static": "Static site",
}
# After the deadline: how long to keep stopping step containers until the build ends.
_STOP_GRACE = 30.0


class Builder:
    def __init__(
        self, settings: BuildSettings, client: docker.DockerClient, steps: Path | None = None,
    ) -> None:
        """`steps`: where builds record their step images (agent.build.steplog)."""
        self.settings = settings
        self.steps = steps
        self.engine = Engine(client, settings)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def build(
        self, request: BuildRequest, emit: Callable[[str], None],
        on_base: Callable[[CodeBase], None] | None = None,
    ) -> BuiltImage:
        """Build `request` into an image tagged `request.tag`. When the plan ends with
        the COPY of the pushed tree, `on_base` hears (on the loop's thread) the image
        that step runs on, as it begins.

        Raises NoBuildpackDetected, InvalidSource, BuildpackBroken, NotEnoughDisk,
        BuildFailed (BuildTimedOut past the deadline), all BuildError.
        """
        check_app(request.app)
        if not match_tag(request.tag):
            raise BuildError(f"{request.app}: {request.tag!r} is not a valid image tag")
        if not request.source.is_dir():
            raise BuildError(f"{request.app}: source {request.source} is not a directory")
        show = _on_loop(asyncio.get_running_loop(), emit)
        async with self._slot(emit):
            started = time.monotonic()
            await asyncio.to_thread(self.engine.check_disk)
            plan, reason = await asyncio.to_thread(self.plan, request)
            emit(_heading(plan.builder, reason))
            for note in plan.notes:
                emit(f"{STEP_INDENT}{note}")
            output = BuildOutput(self.settings.log_tail_lines)
            with tempfile.TemporaryFile(dir=self.settings.work_dir) as context:
                await asyncio.to_thread(_write, plan, request, context)
                announce = None
                if on_base is not None and _code_last(plan):
                    announce = self._announcer(plan, _on_loop(asyncio.get_running_loop(), on_base))
                image_id = await self._run(request, plan, context, output, show, started,
                                           announce)
            duration = time.monotonic() - started
            emit(
                f"{STEP_INDENT}Built {request.tag} ({image_id.removeprefix('sha256:')[:12]}) in {duration:.1f} s"
            )
            log.info(
                "built app=%s tag=%s builder=%s seconds=%.1f",
                request.app,
                request.tag,
                plan.builder,
                duration,
            )
            return BuiltImage(
                image_id=image_id,
                tag=request.tag,
                builder=plan.builder,
                default_processes=dict(plan.default_processes),
                duration=duration,
                steps=tuple(output.steps),
            )

    def plan(self, request: BuildRequest) -> tuple[BuildPlan, str]:
        """Detect the buildpack and plan the build (blocking: may run buildpack scripts)."""
        tree = SourceTree(request.source)
        packs = catalog.buildpacks(
            self.settings.buildpacks_dir,
            self.settings.extra_buildpacks_dir,
            self.settings.script_timeout,
        )
        pack, reason = catalog.detect(tree, packs, request.app)
        bundle = ca.read_bundle(self.settings.ca_bundle) if self.settings.ca_bundle else None
        trust = bundle is not None and pack.name != "dockerfile"
        options = PlanOptions(request.app, self.settings, dict(request.env), trust)
        plan = pack.plan(tree, options)
        if trust and bundle is not None and plan.dockerfile is not None:
            plan = replace(plan, files={**plan.files, **ca.context_files(bundle)})
        return plan, reason

    async def _run(
        self,
        request: BuildRequest,
        plan: BuildPlan,
        context: IO[bytes],
        output: BuildOutput,
        show: Callable[[str], None],
        started: float,
        on_final_step: Callable[[str], None] | None = None,
    ) -> str:
        job = EngineJob(
            app=request.app,
            tag=request.tag,
            dockerfile=dockerfile_path(plan),
            buildargs=plan.buildargs,
            labels={}
            if plan.labelled
            else {"berth.app": request.app, "berth.builder": plan.builder},
        )
        record = StepRecord(self.steps, request.app)
        task = asyncio.ensure_future(asyncio.to_thread(
            self.engine.build, job, context, output, show, on_final_step, record))
        remaining = max(self.settings.timeout - (time.monotonic() - started), 0.1)
        try:
            image_id = await asyncio.wait_for(asyncio.shield(task), remaining)
            record.succeeded()
            return image_id
        except asyncio.CancelledError:
            # The deploy was called off: stop the engine's work too, then go.
            await asyncio.shield(self._stop(task, output))
            raise
        except TimeoutError:
            step = output.current_step
            await self._stop(task, output)
            await asyncio.sleep(0)  # let queued output lines reach emit first
            raise BuildTimedOut(
                request.app, step, self.settings.timeout, output.tail(), cache_layer(output)
            ) from None
        finally:
            await asyncio.sleep(0)

    def _announcer(
        self, plan: BuildPlan, on_base: Callable[[CodeBase], None]
    ) -> Callable[[str], None]:
        """What the engine's thread calls with the final step's base layer (a short id):
        the full id, announced as a CodeBase; an image the engine cannot name is not."""

        def announce(layer: str) -> None:
            try:
                image = str(self.engine.client.api.inspect_image(layer)["Id"])
            except (docker.errors.DockerException, KeyError) as exc:
                log.warning("cannot name the code step's base layer=%s error=%s", layer, exc)
                return
            on_base(CodeBase(image, plan.builder, dict(plan.default_processes)))

        return announce

    async def _stop(self, task: asyncio.Future[str], output: BuildOutput) -> None:
        """Kill step containers until the engine gives up the build (or the grace ends)."""
        deadline = time.monotonic() + _STOP_GRACE
        while not task.done() and time.monotonic() < deadline:
            if output.container_id:
                await asyncio.to_thread(self.engine.stop_step, output.container_id)
            await asyncio.wait({task}, timeout=1.0)
        if task.done():
            try:
                task.result()
            except BuildFailed:
                pass  # the killed step: expected
        else:
            log.warning("build still running after its deadline and %s s of stopping", _STOP_GRACE)
            task.add_done_callback(_consume)

    @asynccontextmanager
    async def _slot(self, emit: Callable[[str], None]) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.settings.parallel))
        slots = self._slots[1]
        if slots.locked():
            emit(f"-----> Waiting for a free build slot ({self.settings.parallel} builds running)")
        async with slots:
            yield


def _heading(builder: str, reason: str) -> str:
    if builder == "dockerfile":
        return "-----> Dockerfile found: building it"
    return f"-----> {TITLES.get(builder, builder + ' app')} detected ({reason})"


def _write(plan: BuildPlan, request: BuildRequest, context: IO[bytes]) -> None:
    write_context(plan, request.source, context)
    context.seek(0)


def _code_last(plan: BuildPlan) -> bool:
    """The plan's last step copies the pushed tree, and the engine adds none after it
    (an unlabelled plan gets LABEL steps appended)."""
    return plan.labelled and plan.dockerfile is not None and ends_with_code_copy(plan.dockerfile)


def _consume(task: asyncio.Future[str]) -> None:
    if not task.cancelled():
        task.exception()


def _on_loop(loop: asyncio.AbstractEventLoop, emit: Callable[[T], None]) -> Callable[[T], None]:
    """A callable for worker threads that runs `emit` on the loop's thread."""

    def deliver(item: T) -> None:
        try:
            emit(item)
        except Exception:  # a task boundary of sorts: a broken sink must not break the build
            log.exception("build output sink failed")

    def show(item: T) -> None:
        loop.call_soon_threadsafe(deliver, item)

    return show
