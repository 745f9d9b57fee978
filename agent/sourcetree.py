"""Unpacking a pushed tree (the tar `git archive` makes) into a build directory, safely.

The archive comes over the control socket from the pre-receive hook. Only regular files,
directories and symbolic links are accepted; a member whose path is absolute, climbs out
with `..`, or passes through a symbolic link is refused, so nothing is written outside the
directory whatever the archive holds. (Python 3.11.2, Debian 12's, has no tarfile
extraction filters, hence this.)
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

from agent.errors import BerthError


class BadArchive(BerthError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"pushed tree refused: {problem}")


def unpack(archive: IO[bytes], destination: Path, *, max_bytes: int) -> None:
    """Extract the tar stream `archive` into the empty directory `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    total = 0
    try:
        with tarfile.open(fileobj=archive, mode="r|") as tar:
            for member in tar:
                target = _target(root, member)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    os.chmod(target, 0o755)
                elif member.issym():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    total += member.size
                    if total > max_bytes:
                        raise BadArchive(f"larger than {max_bytes // (1024 * 1024)} MiB")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    with open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
                    os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
                elif member.type == tarfile.XGLTYPE or member.type == tarfile.XHDTYPE:
                    continue
                else:
                    raise BadArchive(f"{member.name}: only files, directories and links")
    except tarfile.TarError as exc:
        raise BadArchive(f"not a tar archive ({exc})") from exc


def _target(root: Path, member: tarfile.TarInfo) -> Path:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise BadArchive(f"{member.name}: path leaves the tree")
    parts = [p for p in name.parts if p not in ("", ".")]
    if not parts:
        return root
    # Every existing ancestor must be a real directory inside the tree.
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise BadArchive(f"{member.name}: path passes through a symbolic link")
    target = root.joinpath(*parts)
    if target.is_symlink() or (target.exists() and not member.isdir()):
        raise BadArchive(f"{member.name}: appears twice")
    return target
