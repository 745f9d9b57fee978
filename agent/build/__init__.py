"""The image builder: Dockerfile or buildpack detection, build contexts, docker builds.

The rest of Berth uses only what is re-exported here:
    Builder(settings, client).build(request, emit, on_base) -> BuiltImage
with BuildRequest / BuiltImage / BuildStep / CodeBase values and the BuildError tree,
`write_code_archive` (the pushed tree as the final COPY lays it into APP_DIR), and the
image's conventions others rely on: APP_DIR (/app, the code) and APP_USER (its owner).
"""

from agent.build.builder import Builder
from agent.build.context import write_code_archive
from agent.build.dockerfile import APP_DIR, APP_USER, shell_argv
from agent.build.errors import (
    BuildError,
    BuildFailed,
    BuildpackBroken,
    BuildTimedOut,
    InvalidSource,
    NoBuildpackDetected,
    NotEnoughDisk,
)
from agent.build.model import BuildRequest, BuildStep, BuiltImage, CodeBase
from agent.build.settings import BuildSettings

__all__ = [
    "APP_DIR",
    "APP_USER",
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
    "shell_argv",
    "write_code_archive",
]
