"""Apps' bare git repositories: created on first push, with Berth's hooks, owned by the
`berth` user (git-receive-pack runs as that user; the agent runs as root).

The hook templates are shipped with Berth (agent.shipped); `@BERTH_COMMAND@` in them becomes the command that runs
`berth`, `@BERTH_SOCKET@` the agent's control socket.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
from pathlib import Path

import git

from agent.errors import BerthError
from agent.paths import PathSettings
from agent.shipped import hooks_dir

HOOKS = ("pre-receive",)


def ensure_repo(paths: PathSettings, app: str, *, command: str, owner: str | None) -> Path:
    """Create the app's bare repository if needed and (re)install its hooks."""
    path = paths.repo(app)
    repos = paths.repos
    repos.mkdir(parents=True, exist_ok=True)
    created = not (path / "HEAD").exists()
    if created:
        try:
            repo = git.Repo.init(path, bare=True, initial_branch="main")
        except git.GitError as exc:
            raise BerthError(f"cannot create the repository of {app}: {exc}") from exc
        with repo.config_writer() as config:
            # Objects of a rejected push are not kept; gc stays quiet in hooks' output.
            config.set_value("receive", "fsckObjects", "true")
            config.set_value("gc", "autoDetach", "false")
        repo.close()
    for name in HOOKS:
        text = (hooks_dir() / name).read_text(encoding="utf-8")
        text = text.replace("@BERTH_COMMAND@", command).replace(
            "@BERTH_SOCKET@", shlex.quote(str(paths.control_socket)))
        hook = path / "hooks" / name
        if not hook.exists() or hook.read_text(encoding="utf-8") != text:
            hook.write_text(text, encoding="utf-8")
            os.chmod(hook, 0o755)
    if created and owner is not None and os.geteuid() == 0:
        _chown_tree(repos, path, owner)
    return path


def _chown_tree(repos: Path, path: Path, owner: str) -> None:
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise BerthError(f"system user {owner!r} does not exist (ssh.user)") from None
    os.chown(repos, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def remove_repo(paths: PathSettings, app: str) -> None:
    shutil.rmtree(paths.repo(app), ignore_errors=True)
