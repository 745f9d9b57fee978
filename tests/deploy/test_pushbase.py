"""Two pushes to one app at once (agent.deploy.pushbase): the second, based on a commit
the branch no longer holds, is refused before building. Real git repositories; the
deployer over the fakes of tests/deploy/fakes.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import repos
from agent.deploy import pushbase
from agent.deploy.errors import BaseMoved
from agent.deploy.pushbase import ZERO, BranchGuard, PushBase, read_ref
from tests.deploy.fakes import lines

MAIN = "refs/heads/main"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(path, "config", "user.email", "t@example.test")
    git(path, "config", "user.name", "t")
    return path


def commit(repo: Path, message: str) -> str:
    """A commit on its own (the branch is moved by the test, as git would)."""
    tree = git(repo, "write-tree")
    return git(repo, "commit-tree", tree, "-m", message)


async def test_a_push_based_on_a_branch_another_push_moved_is_refused(world, repo) -> None:
    base, first, second = commit(repo, "x"), commit(repo, "a"), commit(repo, "b")
    git(repo, "update-ref", MAIN, base)
    world.apps.create("shop")
    pushed = PushBase(repo / ".git", MAIN, base)

    async def push_then_git_moves_the_branch() -> None:
        await world.deployer.deploy_push("shop", first, world.source, lines()[0], base=pushed)
        await asyncio.sleep(0.3)  # git moves the ref once the hook has exited
        git(repo, "update-ref", MAIN, first, base)

    out, seen = lines()
    try:
        results = await asyncio.gather(
            push_then_git_moves_the_branch(),
            world.deployer.deploy_push("shop", second, world.source, out, base=pushed),
            return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], BaseMoved)
        assert str(results[1]) == (f"main of shop moved to {first[:7]} while this push "
                                   f"(based on {base[:7]}) waited: fetch, merge and push again")
        assert [r.git_sha for r in world.releases.recent("shop")] == [first]  # none built
        assert not any("Building" in line for line in seen)
        # Based on what the branch now holds, the next push deploys.
        after = PushBase(repo / ".git", MAIN, first)
        live = await world.deployer.deploy_push("shop", second, world.source, out, base=after)
        assert live.git_sha == second
    finally:
        await world.runtime.close()


async def test_a_first_push_expects_no_branch_and_a_deleted_one_reads_as_none(repo) -> None:
    assert await read_ref(repo / ".git", MAIN) == ZERO
    guard = BranchGuard(settle=0.2)
    await guard.check("shop", PushBase(repo / ".git", MAIN, ZERO))
    with pytest.raises(BaseMoved):
        await guard.check("shop", PushBase(repo / ".git", MAIN, "1" * 40))


async def test_a_ref_update_git_never_made_is_waited_for_briefly_then_read_as_is(repo) -> None:
    base = commit(repo, "x")
    git(repo, "update-ref", MAIN, base)
    guard = BranchGuard(settle=0.2)
    pushed = PushBase(repo / ".git", MAIN, base)
    guard.deployed("shop", pushed, commit(repo, "a"))  # ... and git refused that update
    await guard.check("shop", pushed)  # the branch still holds base: the push goes on


async def test_a_branch_git_cannot_read_is_left_to_git(tmp_path: Path) -> None:
    guard = BranchGuard(settle=0.2)
    await guard.check("shop", PushBase(tmp_path / "not-a-repo", MAIN, "1" * 40))


async def test_a_git_that_does_not_answer_reads_as_unknown_within_the_deadline(
        repo, tmp_path, monkeypatch) -> None:
    stuck = tmp_path / "bin"
    stuck.mkdir()
    (stuck / "git").write_text("#!/bin/sh\nexec sleep 60\n")
    (stuck / "git").chmod(0o755)
    monkeypatch.setattr(repos, "GIT_PATH", f"{stuck}:/usr/bin:/bin")
    monkeypatch.setattr(pushbase, "READ_TIMEOUT", 0.5)
    began = time.monotonic()
    assert await read_ref(repo / ".git", MAIN) is None  # the push goes on; git checks it
    assert time.monotonic() - began < 10


@pytest.fixture
def owned_repo() -> Iterator[tuple[Path, Path, Path]]:
    """A bare repository owned by uid 65534 in a directory that user can reach, a `git`
    wrapper that records who ran it, and the file it records to."""
    with tempfile.TemporaryDirectory() as top:  # not pytest's 0700 tmp_path
        place = Path(top)
        place.chmod(0o755)
        (place / "bin").mkdir()
        seen = place / "seen"
        wrapper = place / "bin" / "git"
        wrapper.write_text(f"#!/bin/sh\nid -u > {seen}\nexec /usr/bin/git \"$@\"\n")
        wrapper.chmod(0o755)
        seen.touch()
        seen.chmod(0o666)
        shop = place / "shop.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(shop)], check=True)
        subprocess.run(["chown", "-R", "65534:65534", str(shop)], check=True)
        yield shop, place / "bin", seen


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become the repository's owner")
async def test_the_branch_is_read_as_the_repository_owner_never_as_root(
        owned_repo, monkeypatch) -> None:
    """The berth user owns the repositories (and could write their config): git runs
    as that owner, never as root."""
    shop, bin_dir, seen = owned_repo
    monkeypatch.setattr(repos, "GIT_PATH", f"{bin_dir}:/usr/bin:/bin")
    assert await read_ref(shop, MAIN) == ZERO
    assert seen.read_text().strip() == "65534"
