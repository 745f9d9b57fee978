"""The image builder: Dockerfile or buildpack detection, build contexts, docker builds.

The rest of Berth uses only what is re-exported here:
    Builder(settings, client).build(request, emit, on_base) -> BuiltImage
with BuildRequest / BuiltImage / BuildStep / CodeBase values and the BuildError tree,
and `write_code_archive` (the pushed tree as the final COPY lays it into /app).
"""

from agent.build.builder import Builder
from agent.build.dockerfile import shell_argv
from agent.build.errors import (
    BuildError,
    BuildFailed,
    BuildpackBroken,
    BuildTimedOut,
    InvalidSource,
    NoBuildpackDetected,
    NotEnoughDisk,
)
from agent.build.context import write_code_archive
from agent.build.model import BuildRequest, BuildStep, BuiltImage, CodeBase
from agent.build.settings import BuildSettings

__all__ = [
    "BuildError",
    "BuildFailed",
    "BuildRequest",
    "BuildSettings",
    "BuildStep",
    "BuildTimedOut",
    "Builder",
    "BuildpackBroken",
    "BuiltImage",
    "CodeBase",
    "InvalidSource",
    "NoBuildpackDetected",
    "NotEnoughDisk",
    "write_code_archive",
    "shell_argv",
]
