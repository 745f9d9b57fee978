"""The image builder: Dockerfile or buildpack detection, build contexts, docker builds.

The rest of Berth uses only what is re-exported here:
    Builder(settings, client).build(request, emit) -> BuiltImage
with BuildRequest / BuiltImage / BuildStep values and the BuildError tree.
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
from agent.build.model import BuildRequest, BuildStep, BuiltImage
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
    "InvalidSource",
    "NoBuildpackDetected",
    "NotEnoughDisk",
    "shell_argv",
]
