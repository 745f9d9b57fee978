"""The Docker engine side of a build (docker-py, blocking: call it from a thread).

Owns the three things that touch the engine: how much disk is free where it keeps its
images, the streamed classic build itself (`client.api.build` with the resource limits
of BuildSettings, intermediate containers always removed), and stopping the step that is
running when the build's deadline passes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import docker
import docker.errors
import requests.exceptions

from agent.build.errors import BuildError, BuildFailed, NotEnoughDisk
from agent.build.output import BuildOutput
from agent.build.settings import BuildSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# Extra seconds on top of build.timeout for the HTTP read of the build stream, so a
# silent step never trips the client before our own deadline does.
_READ_SLACK = 60.0


@dataclass(frozen=True)
class EngineJob:
    app: str
    tag: str
    dockerfile: str  # path inside the context
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]


def container_limits(settings: BuildSettings) -> dict[str, int | str]:
    """docker-py's container_limits for every build step (pure)."""
    limits: dict[str, int | str] = {}
    if settings.memory_mb:
        limits["memory"] = settings.memory_mb * MIB
        limits["memswap"] = settings.memory_mb * MIB  # no swap on top of the memory limit
    if settings.cpu_shares:
        limits["cpushares"] = settings.cpu_shares
    if settings.cpuset:
        limits["cpusetcpus"] = settings.cpuset
    return limits


def check_free_disk(path: Path, free_bytes: int, min_free_mb: int) -> None:
    """Refuse (NotEnoughDisk) when `free_bytes` is under the minimum (pure)."""
    if free_bytes < min_free_mb * MIB:
        raise NotEnoughDisk(path, free_bytes // MIB, min_free_mb)


def cache_layer(output: BuildOutput) -> str:
    """The image of the last step that completed ("" if none did)."""
    return output.steps[-1].layer_id if output.steps else ""


def _failed(job: EngineJob, output: BuildOutput, reason: str) -> BuildFailed:
    return BuildFailed(job.app, output.current_step, reason, output.tail(), cache_layer(output))


class StepWatcher(Protocol):
    """Hears of each step's container and image as the engine reports them."""

    def add(self, image_id: str) -> None: ...

    def add_container(self, container_id: str) -> None: ...


@dataclass
class _Reported:
    steps: int = 0
    container: str | None = None

    def report(self, output: BuildOutput, watcher: StepWatcher) -> None:
        """Tell `watcher` what `output` learnt since the last report."""
        if output.container_id and output.container_id != self.container:
            self.container = output.container_id
            watcher.add_container(output.container_id)
        for step in output.steps[self.steps:]:
            if step.layer_id:
                watcher.add(step.layer_id)
        self.steps = len(output.steps)


class Engine:
    def __init__(self, client: docker.DockerClient, settings: BuildSettings) -> None:
        self.client = client
        self.settings = settings
        self._root_dir: Path | None = None  # where the engine keeps images: asked once

    def data_dir(self) -> Path:
        if self.settings.disk_path is not None:
            return self.settings.disk_path
        if self._root_dir is not None:
            return self._root_dir
        try:
            self._root_dir = Path(self.client.info()["DockerRootDir"])
            return self._root_dir
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            KeyError,
        ) as exc:
            raise BuildError(f"cannot ask the Docker engine where it keeps images: {exc}") from exc

    def check_disk(self) -> None:
        path = self.data_dir()
        try:
            free = shutil.disk_usage(path).free
        except OSError as exc:
            log.warning("cannot measure free disk path=%s error=%s", path, exc.strerror)
            return
        check_free_disk(path, free, self.settings.min_free_disk_mb)

    def build(
        self, job: EngineJob, context: IO[bytes], output: BuildOutput, show: Callable[[str], None],
        on_final_step: Callable[[str], None] | None = None,
        watcher: StepWatcher | None = None,
    ) -> str:
        """Run the build, feeding `output` and showing its lines; the image id, or
        BuildFailed with the step and the log's tail. `on_final_step` hears, once, the
        image the last step runs on, as that step begins; `watcher` each step's
        container and image as the engine reports them."""
        reported = _Reported()
        try:
            stream = self.client.api.build(
                fileobj=context,
                custom_context=True,
                dockerfile=job.dockerfile,
                tag=job.tag,
                buildargs=dict(job.buildargs),
                labels=dict(job.labels),
                container_limits=container_limits(self.settings),
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=self.settings.timeout + _READ_SLACK,
            )
            for chunk in stream:
                for line in output.feed(chunk):
                    show(line)
                if watcher is not None:
                    reported.report(output, watcher)
                if on_final_step is not None and (base := output.final_step_base):
                    on_final_step(base)
                    on_final_step = None
            for line in output.finish():
                show(line)
        except docker.errors.APIError as exc:
            raise _failed(job, output, str(exc.explanation or exc)) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise _failed(job, output, f"lost the Docker engine: {exc}") from exc
        if output.error is not None:
            raise _failed(job, output, output.reason)
        return self._image_id(job, output)

    def _image_id(self, job: EngineJob, output: BuildOutput) -> str:
        if output.image_id and output.image_id.startswith("sha256:"):
            return output.image_id
        try:
            return str(self.client.api.inspect_image(job.tag)["Id"])
        except docker.errors.DockerException as exc:
            raise BuildFailed(
                job.app, "", f"built, but cannot find {job.tag}: {exc}", output.tail()
            ) from exc

    def stop_step(self, container_id: str) -> None:
        """Kill the container of the running step (the build then fails at that step)."""
        try:
            self.client.api.kill(container_id)
        except docker.errors.APIError as exc:
            log.info(
                "step container already gone container=%s error=%s", container_id, exc.explanation
            )
