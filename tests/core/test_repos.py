"""agent.repos: repositories owned by the berth user, hooks never written through links."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import hostfiles
from agent.errors import BerthError
from agent.hostfiles import UnsafePath
from agent.paths import PathSettings
from agent.repos import ensure_repo, git_as_owner
from agent.services import trees
from tests.processes import ended

BERTH = pwd.getpwnam("berth")
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def paths(tmp_path: Path) -> PathSettings:
    return PathSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run")


def make(paths: PathSettings, app: str = "shop", command: str = "berth") -> Path:
    return ensure_repo(paths, app, command=command, owner="berth")


def test_a_new_repository_is_the_berth_users_and_not_world_readable(paths: PathSettings) -> None:
    repo = make(paths)
    for path in (paths.repos, repo, repo / "hooks", repo / "HEAD"):
        assert os.lstat(path).st_uid == BERTH.pw_uid, path
    assert stat.S_IMODE(os.stat(paths.repos).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(repo).st_mode) == 0o750
    hook = repo / "hooks" / "pre-receive"
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755 and "berth" in hook.read_text()


def test_a_hook_replaced_by_a_symlink_is_refused_and_its_target_untouched(
    paths: PathSettings, tmp_path: Path
) -> None:
    repo = make(paths)
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    victim.chmod(0o600)
    hook = repo / "hooks" / "pre-receive"
    hook.unlink()
    hook.symlink_to(victim)
    with pytest.raises(UnsafePath, match="pre-receive: a symbolic link"):
        make(paths)
    assert victim.read_text() == "root's file\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_a_hooks_directory_made_a_symlink_is_refused(paths: PathSettings, tmp_path: Path) -> None:
    repo = make(paths)
    elsewhere = tmp_path / "etc-like"
    elsewhere.mkdir()
    shutil.rmtree(repo / "hooks")
    (repo / "hooks").symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="hooks: a symbolic link"):
        make(paths)
    assert list(elsewhere.iterdir()) == []


def test_a_repository_made_a_symlink_is_refused(paths: PathSettings, tmp_path: Path) -> None:
    make(paths)
    elsewhere = tmp_path / "elsewhere.git"
    (paths.repos / "other.git").symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="other.git: a symbolic link"):
        make(paths, "other")
    assert not elsewhere.exists()



def test_a_new_repository_swapped_for_a_link_while_it_is_made_leaves_the_target_alone(
    paths: PathSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    make(paths)  # repos/ is the berth user's from now on
    victim = tmp_path / "etc-like"
    victim.mkdir()
    victim.chmod(0o755)
    (victim / "passwd").write_text("root's file\n")
    target = paths.repo("next")
    write = hostfiles.replace_file

    def write_then_swap(dir_fd: int, name: str, data: bytes, **options: int) -> None:
        write(dir_fd, name, data, **options)
        # The berth user owns repos/: it moves what root is making aside, leaves a link.
        if target.exists():
            target.rename(paths.repos / "aside.git")
        if not target.is_symlink():
            target.symlink_to(victim)

    monkeypatch.setattr(hostfiles, "replace_file", write_then_swap)
    with pytest.raises(UnsafePath, match="next.git"):
        make(paths, "next")
    for path in (victim, victim / "passwd"):
        assert os.lstat(path).st_uid == 0, f"{path} was given to the berth user"
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o755
    assert sorted(p.name for p in paths.data_dir.iterdir()) == ["repos"]

def test_a_foreign_owned_hooks_directory_is_refused(paths: PathSettings) -> None:
    repo = make(paths)
    os.chown(repo / "hooks", NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(UnsafePath, match=f"hooks: owned by uid {NOBODY.pw_uid}"):
        make(paths)


def test_a_changed_hook_is_rewritten_atomically(paths: PathSettings) -> None:
    repo = make(paths)
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 0\n")
    before = hook.stat().st_ino
    make(paths)
    assert "berth" in hook.read_text() and hook.stat().st_ino != before
    assert [p.name for p in (repo / "hooks").iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory the berth user can reach (pytest's tmp_path is root's only)."""
    root = Path(tempfile.mkdtemp(prefix="berth-repos-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def commit_into(repo: Path, work: Path, files: dict[str, str]) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(work.parent / "home")}
    (work.parent / "home").mkdir()
    (work.parent / "home" / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
    work.mkdir()
    for name, text in files.items():
        (work / name).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"],
                 ["push", "-q", str(repo), "main"]):
        subprocess.run(["git", "-C", str(work), *args], env=env, check=True)
    for root, dirs, files_ in os.walk(repo):
        for name in [root, *(os.path.join(root, n) for n in dirs + files_)]:
            os.chown(name, BERTH.pw_uid, BERTH.pw_gid, follow_symlinks=False)
    return subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_git_archive_runs_as_the_repositorys_owner_not_root(reachable: Path) -> None:
    paths = PathSettings(data_dir=reachable / "data", run_dir=reachable / "run")
    repo = make(paths, command="true")  # the hook lets the push in
    sha = commit_into(repo, reachable / "work", {"Procfile": "web: ./run\n"})
    marks = reachable / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    # What a compromised berth user can write: its repository's config.
    (repo / "info" / "attributes").write_text("* filter=probe\n")
    with open(repo / "config", "a") as config:
        config.write(f"[filter \"probe\"]\n\tsmudge = \"sh -c 'id -u >> {marks}/uid; cat'\"\n"
                     f"[core]\n\tfsmonitor = \"sh -c 'id -u >> {marks}/fsmonitor'\"\n")
    workdir = reachable / "build"
    workdir.mkdir()
    source = asyncio.run(trees.export(repo, sha, workdir, 1 << 20))
    assert (source / "Procfile").read_text() == "web: ./run\n"
    ran_as = set((marks / "uid").read_text().split())
    assert ran_as == {str(BERTH.pw_uid)}, "the repository's filter ran as root"
    assert not (marks / "fsmonitor").exists()


def test_git_refuses_a_symlinked_repository(reachable: Path) -> None:
    (reachable / "shop.git").symlink_to("/root")
    with pytest.raises(UnsafePath, match="shop.git: a symbolic link"):
        git_as_owner(reachable / "shop.git", ["rev-parse", "HEAD"], timeout=10)


def test_a_directory_planted_where_a_repository_will_be_is_refused(paths: PathSettings) -> None:
    make(paths)
    planted = paths.repos / "next.git"
    planted.mkdir()
    (planted / "config").write_text("[core]\n\tfsmonitor = \"touch /tmp/pwned\"\n")
    with pytest.raises(UnsafePath, match="next.git: exists but holds no repository"):
        make(paths, "next")
    assert not (planted / "HEAD").exists()


def test_git_archive_that_hangs_is_killed_at_its_deadline(reachable: Path) -> None:
    paths = PathSettings(data_dir=reachable / "data", run_dir=reachable / "run")
    repo = make(paths, command="true")
    sha = commit_into(repo, reachable / "work", {"Procfile": "web: ./run\n"})
    marks = reachable / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    # A filter that never finishes in time stands for any git that hangs.
    (repo / "info" / "attributes").write_text("* filter=stall\n")
    with open(repo / "config", "a") as config:
        config.write(f"[filter \"stall\"]\n\tsmudge = \"sh -c 'echo $$ > {marks}/pid; "
                     "exec sleep 60'\"\n")
    workdir = reachable / "build"
    workdir.mkdir()
    started = time.monotonic()
    try:
        with pytest.raises(BerthError, match=f"cannot read {sha[:7]} from .*shop.git: "
                                             "git archive did not finish within 1 s"):
            asyncio.run(trees.export(repo, sha, workdir, 1 << 20, timeout=1))
    finally:
        if (marks / "pid").exists():  # in case the filter outlived the git that started it
            with contextlib.suppress(ProcessLookupError):
                os.kill(int((marks / "pid").read_text()), signal.SIGKILL)
    assert time.monotonic() - started < 30
    assert not workdir.exists()


def test_git_archive_past_its_deadline_takes_its_filters_children_with_it(
    reachable: Path,
) -> None:
    paths = PathSettings(data_dir=reachable / "data", run_dir=reachable / "run")
    repo = make(paths, command="true")
    sha = commit_into(repo, reachable / "work", {"Procfile": "web: ./run\n"})
    marks = reachable / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    # The filter starts a child of its own, then hangs: both outlive a git killed alone.
    (repo / "info" / "attributes").write_text("* filter=spawn\n")
    with open(repo / "config", "a") as config:
        config.write(f"[filter \"spawn\"]\n\tsmudge = \"sh -c 'sleep 60 & "
                     f"echo $$ $! $(cut -d\\\" \\\" -f5 /proc/$$/stat) > {marks}/ids.new; "
                     f"mv {marks}/ids.new {marks}/ids; exec sleep 60'\"\n")
    workdir = reachable / "build"
    workdir.mkdir()
    pids: list[int] = []
    try:
        with pytest.raises(BerthError, match="git archive did not finish within 3 s"):
            asyncio.run(trees.export(repo, sha, workdir, 1 << 20, timeout=3))
        filter_pid, child_pid, group = (int(n) for n in (marks / "ids").read_text().split())
        pids = [filter_pid, child_pid]
        assert group != os.getpgrp(), "git ran in the caller's process group"
        assert ended(pids), "the filter's processes live on"
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
