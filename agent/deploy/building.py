"""The build step of a push: the pushed tree becomes the release's image.

The release moves to BUILDING, the builder (agent.build) makes the image, and the release
is saved with what the deploy needs of it: the image, the process types (the builder's
defaults overridden by the Procfile's), the release command and app.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from agent.build import BuildRequest, BuiltImage, CodeBase
from agent.deploy.output import DeployOutput
from agent.deploy.pushed import PushedTree
from agent.releases import Release, ReleaseState
from agent.store.apps import App
from agent.store.releases import ReleaseStore

# A build's outcome: the release with its image, and the formation it asks for.
Built = tuple[Release, dict[str, int]]


class ImageBuilder(Protocol):
    """What a deploy needs of the builder."""

    async def build(
        self, request: BuildRequest, emit: Callable[[str], None],
        on_base: Callable[[CodeBase], None] | None = None,
    ) -> BuiltImage: ...


class BaseListener(Protocol):
    """Who hears the image a build's code step runs on (an early start)."""

    def based(self, base: CodeBase) -> None: ...


async def build_release(
    builder: ImageBuilder, releases: ReleaseStore, app: App, release: Release, source: Path,
    pushed: PushedTree, out: DeployOutput, *, listener: BaseListener | None,
) -> Built:
    """Build `source` into `release`'s image; `listener` hears the code step's base."""
    release = releases.move(release, ReleaseState.BUILDING)
    out.step(f"Building {app.name} {release.version} from {release.git_sha[:7]}")
    # The builder limits parallel builds itself (build.parallel), says so, and calls
    # `emit` on the event loop's thread.
    built = await builder.build(
        BuildRequest(app=app.name, source=source, tag=f"berth/{app.name}:{release.version}",
                     env=dict(release.config)),
        out.raw, listener.based if listener is not None else None,
    )
    processes = pushed.processes(built.default_processes)
    out.detail(f"built with {built.builder}; process types: {', '.join(sorted(processes))}")
    for line in pushed.origins(built.default_processes, built.builder):
        out.detail(line)
    release = replace(
        release, image=built.image_id, image_tag=built.tag, builder=built.builder,
        processes=processes, release_command=pushed.procfile.release,
        app_json=pushed.app_json_text,
    )
    releases.save(release)
    return release, pushed.formation(app, processes)
