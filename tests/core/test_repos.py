"""agent.repos: repositories owned by the berth user, hooks never written through links."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

import pytest

from agent.hostfiles import UnsafePath
from agent.paths import PathSettings
from agent.repos import ensure_repo

BERTH = pwd.getpwnam("berth")
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def paths(tmp_path: Path) -> PathSettings:
    return PathSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run")


def make(paths: PathSettings, app: str = "shop") -> Path:
    return ensure_repo(paths, app, command="berth", owner="berth")


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
