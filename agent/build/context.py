"""Assembling the tar stream the engine builds from.

For an app with its own Dockerfile the context is its tree as it is. For a buildpack
build the pushed tree goes under `app/` and Berth's generated files (the Dockerfile,
CA trust, buildpack files) under `berth/`, so `COPY app/ ./` copies exactly the app and
the source tree on disk is never modified. Either way the tree's .dockerignore is
honoured, and symlinks go in as symlinks (never followed out of the tree).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import IO

from docker.utils.build import exclude_paths

from agent import treefile
from agent.build.model import CONTEXT_BERTH, CONTEXT_SOURCE, BuildPlan

DOCKERFILE = f"{CONTEXT_BERTH}/Dockerfile"


def dockerfile_path(plan: BuildPlan) -> str:
    """The Dockerfile's path inside the context."""
    return "Dockerfile" if plan.dockerfile is None else DOCKERFILE


def ignore_patterns(source: Path) -> list[str]:
    """The tree's .dockerignore patterns (read through agent.treefile: capped, in-tree)."""
    text = treefile.read_text(source, ".dockerignore")
    if text is None:
        return []
    lines = text.splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def write_context(plan: BuildPlan, source: Path, out: IO[bytes]) -> None:
    """Write the build context of `plan` for the tree at `source` to `out` (a tar)."""
    prefix = "" if plan.dockerfile is None else f"{CONTEXT_SOURCE}/"
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        if prefix:
            archive.addfile(_directory(CONTEXT_SOURCE))
        _add_tree(archive, source, prefix, (0, 0, "root"))
        if plan.dockerfile is not None:
            _add_bytes(archive, DOCKERFILE, plan.dockerfile.encode(), 0o644)
            for path, file in sorted(plan.files.items()):
                _add_bytes(archive, path, file.content, file.mode)


def write_code_archive(source: Path, uid: int, gid: int, user: str, out: IO[bytes]) -> None:
    """The tree at `source` as a buildpack's last step (`dockerfile.code_copy`) lays it
    into /app: the same entries (.dockerignore honoured), owned by `uid`:`gid`. A tar
    to extract in /app of a container of that step's base image."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add_tree(archive, source, "", (uid, gid, user))


def _add_tree(
    archive: tarfile.TarFile, source: Path, prefix: str, owner: tuple[int, int, str]
) -> None:
    root = str(source.resolve())
    names = sorted(exclude_paths(root, ignore_patterns(source), dockerfile="Dockerfile"))
    for name in names:
        info = archive.gettarinfo(str(Path(root) / name), arcname=prefix + name)
        if info is None:  # sockets and the like
            continue
        info.uid, info.gid, info.uname = owner
        info.gname = info.uname
        if info.isfile():
            with open(Path(root) / name, "rb") as handle:
                archive.addfile(info, handle)
        elif info.isdir() or info.issym() or info.islnk():
            archive.addfile(info)


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))
