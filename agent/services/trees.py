"""The source trees a deploy builds: a pushed `git archive` stream, or a commit exported
again from the app's repository (ps:rebuild), unpacked into a work directory of its own."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from agent.errors import BerthError
from agent.repos import git_as_owner
from agent.sourcetree import unpack

EXPORT_TIMEOUT = 300.0  # seconds `git archive` may take before the deploy gives up


def new_workdir(builds: Path, app: str, sha: str) -> Path:
    """A fresh directory under `builds` for one deploy of `app` at `sha`."""
    builds.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{app}-{sha[:8]}-", dir=builds))


async def receive(chunks: AsyncIterator[bytes], workdir: Path, limit: int) -> Path:
    """Store a tar stream (at most `limit` bytes) and unpack it into workdir/src; the
    work directory is removed if that fails."""
    try:
        archive = workdir / "push.tar"
        size = 0
        with archive.open("wb") as sink:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BerthError(f"the pushed tree is larger than {limit // (1024 * 1024)} "
                                     "MiB (deploy.max_push_bytes)")
                sink.write(chunk)
        await asyncio.to_thread(_extract, archive, workdir, limit)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir / "src"


async def export(repo: Path, sha: str, workdir: Path, limit: int, *,
                 timeout: float = EXPORT_TIMEOUT) -> Path:
    """`git archive` of `sha` from the app's repository into workdir/src (git runs as
    the repository's owner: agent.repos.git_as_owner), killed after `timeout` seconds;
    the work directory is removed if that fails."""
    try:
        await asyncio.to_thread(_export, repo, sha, workdir, limit, timeout)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir / "src"


def _export(repo: Path, sha: str, workdir: Path, limit: int, timeout: float) -> None:
    archive = workdir / "push.tar"
    try:
        with archive.open("wb") as sink:
            result = git_as_owner(repo, ["archive", "--format=tar", sha],
                                  stdout=sink, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:  # git was killed and waited for
        raise BerthError(f"cannot read {sha[:7]} from {repo}: git archive did not finish "
                         f"within {timeout:g} s") from None
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BerthError(f"cannot read {sha[:7]} from {repo}: "
                         f"{reason[-1] if reason else 'git failed'}")
    _extract(archive, workdir, limit)


def _extract(archive: Path, workdir: Path, limit: int) -> None:
    with archive.open("rb") as source:
        unpack(source, workdir / "src", max_bytes=limit)
    archive.unlink()
