"""Which buildpacks exist, in which order, and which one takes a given source tree.

Order: the app's own Dockerfile first, then each buildpack directory of the built-in
directory (Berth's buildpacks/), then of the extra directory (build.extra_buildpacks_dir),
each sorted by directory name (so "10-python" comes before "20-node"). A directory is a
built-in when its buildpack.toml says `builtin = "NAME"`, else a script buildpack
(`agent.build.scripts`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.build.errors import BuildpackBroken, NoBuildpackDetected
from agent.build.packs import Buildpack
from agent.build.packs.node import NodeBuildpack
from agent.build.packs.own_dockerfile import DockerfileBuildpack
from agent.build.packs.python import PythonBuildpack
from agent.build.packs.static import StaticBuildpack
from agent.build.scripts import ScriptBuildpack
from agent.build.source import SourceTree
from agent.shipped import buildpacks_dir

BUILTINS: dict[str, Callable[[], Buildpack]] = {
    "python": PythonBuildpack,
    "node": NodeBuildpack,
    "static": StaticBuildpack,
}
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
_ORDER_PREFIX = re.compile(r"^\d+-")


def shipped_buildpacks_dir() -> Path:
    """The buildpacks/ directory shipped with Berth (in the package or the checkout)."""
    return buildpacks_dir()


def load_directory(directory: Path, script_timeout: float) -> list[Buildpack]:
    """The buildpacks in `directory`, in name order (an absent directory has none)."""
    if not directory.is_dir():
        return []
    packs: list[Buildpack] = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            packs.append(load_buildpack(entry, script_timeout))
    return packs


def load_buildpack(directory: Path, script_timeout: float) -> Buildpack:
    manifest = _manifest(directory)
    builtin = manifest.get("builtin")
    if builtin is not None:
        if builtin not in BUILTINS:
            raise BuildpackBroken(directory.name, f"unknown builtin {builtin!r} in buildpack.toml")
        return BUILTINS[str(builtin)]()
    name = str(manifest.get("name") or _ORDER_PREFIX.sub("", directory.name))
    if not _NAME.fullmatch(name):
        raise BuildpackBroken(directory.name, f"name {name!r} must match {_NAME.pattern}")
    if (
        not (directory / "bin" / "detect").is_file()
        or not (directory / "bin" / "dockerfile").is_file()
    ):
        raise BuildpackBroken(name, f"{directory} needs bin/detect and bin/dockerfile")
    looks_for = str(manifest.get("looks_for") or f"what {directory}/bin/detect accepts")
    return ScriptBuildpack(directory, name, looks_for, script_timeout)


def _manifest(directory: Path) -> dict[str, object]:
    path = directory / "buildpack.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildpackBroken(directory.name, f"cannot read buildpack.toml: {exc}") from exc


def buildpacks(
    builtin_dir: Path | None, extra_dir: Path | None, script_timeout: float
) -> list[Buildpack]:
    """Every buildpack in detection order, the Dockerfile rule first."""
    packs: list[Buildpack] = [DockerfileBuildpack()]
    packs += load_directory(builtin_dir or shipped_buildpacks_dir(), script_timeout)
    if extra_dir is not None:
        packs += load_directory(extra_dir, script_timeout)
    return packs


def detect(tree: SourceTree, packs: Sequence[Buildpack], app: str) -> tuple[Buildpack, str]:
    """The first buildpack that takes the tree and why, or NoBuildpackDetected listing
    what each one looked for."""
    for pack in packs:
        reason = pack.detect(tree)
        if reason is not None:
            return pack, reason
    raise NoBuildpackDetected(app, tuple(f"{p.name}: {p.looks_for}" for p in packs))
