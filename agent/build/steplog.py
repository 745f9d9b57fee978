"""The images a build's steps made, recorded while it runs, so that what a build killed
midway leaves in the engine can be found again.

The classic builder labels only the finished image: the step images of an app's own
Dockerfile killed midway are untagged and carry nothing of Berth's, and the engine
leaves the step container it stopped behind. So each build keeps a record (one file
under <dir>/<app>/, one line per step image and per step container, appended as the
engine reports them) that is dropped when the build succeeds (its steps are then the
finished image's ancestors). What stays is a failed or killed build's record: the boot's
cleanup and apps:destroy remove its step containers, then the recorded images that are
still unnamed and that no other image builds on (`removable`, pure), then the records.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The builder prints 12 hex digits; anything shorter could name someone else's image.
MIN_ID_LENGTH = 12
CONTAINER = "container "  # a record's line naming a step container, not an image


@dataclass(frozen=True)
class EngineImage:
    """One image as the engine lists it (all of them, intermediate ones included)."""

    id: str  # "sha256:..."
    parent: str  # "sha256:..." or ""
    named: bool  # has a tag or a digest: someone's image, never removed here


def removable(recorded: Iterable[str], images: Iterable[EngineImage]) -> list[str]:
    """The full ids of recorded images that are unnamed and that no image builds on,
    leaves first; once one goes, its recorded parent may follow (pure)."""
    listed = list(images)
    by_id = {image.id: image for image in listed}
    wanted = _matching(recorded, by_id)
    children = Counter(image.parent for image in listed if image.parent)
    queue = sorted(i for i in wanted if children[i] == 0 and not by_id[i].named)
    chosen: list[str] = []
    while queue:
        image_id = queue.pop(0)
        chosen.append(image_id)
        parent = by_id[image_id].parent
        if not parent:
            continue
        children[parent] -= 1
        if (parent in wanted and children[parent] == 0 and parent in by_id
                and not by_id[parent].named and parent not in chosen):
            queue.append(parent)
    return chosen


def _matching(recorded: Iterable[str], by_id: dict[str, EngineImage]) -> set[str]:
    """The listed images' full ids that recorded (short) ids name unambiguously."""
    found: set[str] = set()
    for short in {r.strip().removeprefix("sha256:") for r in recorded}:
        if len(short) < MIN_ID_LENGTH:
            continue
        hits = [i for i in by_id if i.removeprefix("sha256:").startswith(short)]
        if len(hits) == 1:
            found.add(hits[0])
    return found


class StepRecord:
    """One build's record of its step images (nothing is kept when `directory` is None)."""

    def __init__(self, directory: Path | None, app: str) -> None:
        self.path: Path | None = None
        if directory is not None:
            name = f"{int(time.time())}-{secrets.token_hex(4)}"
            self.path = directory / app / name

    def add(self, image_id: str) -> None:
        """Append one step's image (called from the engine's thread)."""
        self._append(image_id)

    def add_container(self, container_id: str) -> None:
        """Append the container a step runs in (called from the engine's thread)."""
        self._append(CONTAINER + container_id)

    def _append(self, line: str) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="ascii") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            log.warning("cannot record a build step's image path=%s error=%s",
                        self.path, exc.strerror)

    def succeeded(self) -> None:
        """The build finished: its steps belong to the finished image."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def records(directory: Path, app: str) -> list[Path]:
    """The app's records left by failed or killed builds."""
    folder = directory / app
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def recorded(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """The step images and the step containers the records name."""
    lines: list[str] = []
    for path in paths:
        try:
            lines += [line.strip() for line in path.read_text("ascii").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read a build record path=%s error=%s", path, exc)
    containers = [line.removeprefix(CONTAINER) for line in lines if line.startswith(CONTAINER)]
    images = [line for line in lines if line and not line.startswith(CONTAINER)]
    return images, containers


def forget(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # other records remain
