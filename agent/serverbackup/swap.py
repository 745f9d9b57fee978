"""Putting a staged server in place of the live one, all or nothing (blocking).

The staged trees sit in data_dir (same file system), so each step is a rename: the live
directory moves into `previous/`, the staged one takes its place. The state database is
copied to `previous/berth.db` first, then given the staged content in one step. Should
any step fail, what was done is undone in reverse order and the error raised: the
server keeps its previous data.
"""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.serverbackup.manifest import DATABASE, TREES
from agent.store.db import Database

log = logging.getLogger(__name__)

# data_dir's directories a restore replaces: the archive's trees, and add-ons' data,
# which is re-created from the dumps (an older add-on's directory would be in the way).
REPLACED = (*TREES, "addons")
MODES = {"repos": 0o750, "certs": 0o700, "storage": 0o700, "backups": 0o700, "addons": 0o700}


@dataclass
class Swap:
    data_dir: Path
    staged: Path  # the unpacked archive
    previous: Path  # where the live data goes
    db: Database
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def run(self, repo_owner: str) -> None:
        """Everything in place, or nothing (the error is raised after the undo)."""
        self.previous.mkdir(mode=0o700, parents=True, exist_ok=False)
        try:
            self._give_repos_to(repo_owner)
            for name in REPLACED:
                self._replace_tree(name)
            self._replace_database()
        except BaseException:
            self.undo()
            raise
        self._undo.clear()

    def undo(self) -> None:
        for step in reversed(self._undo):
            try:
                step()
            except Exception:  # each step undone that can be; the error is the caller's
                log.exception("restore: a step could not be undone")
        self._undo.clear()

    def _replace_tree(self, name: str) -> None:
        live, staged, aside = self.data_dir / name, self.staged / name, self.previous / name
        if live.exists() or live.is_symlink():
            os.rename(live, aside)
            self._undo.append(lambda: os.rename(aside, live))
        if not staged.is_dir():
            staged.mkdir(mode=0o700)
        os.rename(staged, live)
        self._undo.append(lambda: os.rename(live, staged))
        os.chmod(live, MODES[name])

    def _replace_database(self) -> None:
        copy = self.previous / "berth.db"
        self.db.copy_to(copy)
        self.db.replace_with(self.staged / DATABASE)
        self._undo.append(lambda: self.db.replace_with(copy))

    def _give_repos_to(self, owner: str) -> None:
        """The repositories belong to this server's berth user (its uid may differ from
        the old server's); nothing followed."""
        repos = self.staged / "repos"
        if os.geteuid() != 0 or not repos.is_dir():
            return
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            return
        for root, dirs, files in os.walk(repos):
            os.chown(root, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid,
                         follow_symlinks=False)
