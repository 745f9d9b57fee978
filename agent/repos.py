"""Apps' bare git repositories: created on first push, with Berth's hooks, owned by the
`berth` user (git-receive-pack runs as that user; the agent runs as root).

The hook templates are shipped with Berth (agent.shipped); `@BERTH_COMMAND@` in them becomes the command that runs
`berth`, `@BERTH_SOCKET@` the agent's control socket.
"""

from __future__ import annotations

import errno
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import git

from agent import hostfiles, processgroup
from agent.errors import BerthError
from agent.hostfiles import UnsafePath
from agent.paths import PathSettings
from agent.shipped import hooks_dir

HOOKS = ("pre-receive",)
GIT_PATH = "/usr/local/bin:/usr/bin:/bin"


def ensure_repo(paths: PathSettings, app: str, *, command: str, owner: str | None) -> Path:
    """Create the app's bare repository if needed and (re)install its hooks. The hooks
    are written through directory descriptors (agent.hostfiles): a symlinked or
    foreign-owned repository or hooks directory, or hook, is refused. A new repository
    is made whole where the berth user cannot reach it, then renamed into place."""
    path = paths.repo(app)
    repos = paths.repos
    repos.mkdir(parents=True, exist_ok=True)
    entry = _owner(owner)
    owners = {os.geteuid()} | ({entry.pw_uid} if entry is not None else set())
    if path.is_symlink():
        raise UnsafePath(path, "a symbolic link")
    created = not (path / "HEAD").exists()
    if created and path.exists():
        # Made by someone else (the berth user owns repos/): its config or templates
        # would be taken by the git that creates the repository as root.
        raise UnsafePath(path, "exists but holds no repository; remove it to push again")
    if created:
        _create(paths, app, command, entry)
    _install_hooks(repos, path.name, paths, command, owners)
    return path


def _create(paths: PathSettings, app: str, command: str,
            entry: pwd.struct_passwd | None) -> None:
    """Make the repository (git init, hooks, owner and modes) in a directory of root's
    beside repos/, then rename it in. The berth user owns repos/ and could swap a
    repository being made there for a link between two steps; nothing here is written,
    chmodded or chowned through a path it can change."""
    path = paths.repo(app)
    staging = Path(tempfile.mkdtemp(prefix=".new-repo-", dir=paths.repos.parent))
    try:
        made = staging / path.name
        _init(made, app)
        _install_hooks(staging, made.name, paths, command, {os.geteuid()})
        if entry is not None and os.geteuid() == 0:
            _chown_tree(made, entry)
        try:
            os.rename(made, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                raise
            raise UnsafePath(path, "made by someone else while Berth created it") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if entry is not None and os.geteuid() == 0:
        os.chown(paths.repos, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        os.chmod(paths.repos, 0o750)


def _install_hooks(parent: Path, name: str, paths: PathSettings, command: str,
                   owners: set[int]) -> None:
    """Berth's hooks in `parent`/`name`/hooks, rewritten only when they differ."""
    with hostfiles.directory(parent, f"{name}/hooks", owners=owners) as hooks:
        for hook_name in HOOKS:
            text = (hooks_dir() / hook_name).read_text(encoding="utf-8")
            text = text.replace("@BERTH_COMMAND@", command).replace(
                "@BERTH_SOCKET@", shlex.quote(str(paths.control_socket)))
            hook = parent / name / "hooks" / hook_name
            if hostfiles.read_file(hooks, hook_name, hook, owners=owners) != text.encode():
                hostfiles.replace_file(hooks, hook_name, text.encode(), mode=0o755)


def _init(path: Path, app: str) -> None:
    try:
        repo = git.Repo.init(path, bare=True, initial_branch="main")
    except git.GitError as exc:
        raise BerthError(f"cannot create the repository of {app}: {exc}") from exc
    with repo.config_writer() as config:
        # Objects of a rejected push are not kept; gc stays quiet in hooks' output.
        config.set_value("receive", "fsckObjects", "true")
        config.set_value("gc", "autoDetach", "false")
    repo.close()


def _owner(owner: str | None) -> pwd.struct_passwd | None:
    if owner is None:
        return None
    try:
        return pwd.getpwnam(owner)
    except KeyError:
        raise BerthError(f"system user {owner!r} does not exist (ssh.user)") from None


def _chown_tree(path: Path, entry: pwd.struct_passwd) -> None:
    """The new repository to the berth user, 0750 (only ever called where the berth
    user cannot reach it); nothing followed."""
    uid, gid = entry.pw_uid, entry.pw_gid
    os.chmod(path, 0o750)
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid, follow_symlinks=False)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def git_as_owner(repo: Path, args: list[str], *, timeout: float,
                 **options: Any) -> subprocess.CompletedProcess[bytes]:
    """Run `git --git-dir REPO ARGS` as the user who owns the repository, never as root on
    a repository the berth user owns (its config could name a filter or fsmonitor
    command), with no system or global configuration and no hooks. Past `timeout`
    seconds git and everything it started (filters) are killed (agent.processgroup) and
    subprocess.TimeoutExpired is raised."""
    info = os.stat(repo, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(repo, "a symbolic link")
    become: dict[str, Any] = {}
    home = "/nonexistent"
    if os.geteuid() == 0 and info.st_uid != 0:
        become = {"user": info.st_uid, "group": info.st_gid, "extra_groups": []}
    env = {"PATH": GIT_PATH, "HOME": home, "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
    command = ["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
               "--git-dir", str(repo), *args]
    return processgroup.run(command, timeout=timeout, env=env, cwd="/", **become, **options)


def remove_repo(paths: PathSettings, app: str) -> None:
    shutil.rmtree(paths.repo(app), ignore_errors=True)
