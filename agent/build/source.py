"""Read-only access to a pushed source tree that never leaves it.

The tree comes from a user's push: a symlink named `requirements.txt` may point at
/etc/shadow or /dev/zero. Every look and read goes through `agent.treefile`, which
follows links only inside the tree, reads regular files only, caps their size, and
refuses anything else with a `TreeFileRefused` naming the file. Blocking: the builder
calls it from a worker thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent import treefile
from agent.treefile import MAX_FILE_BYTES, TreeFileRefused

MAX_READ_BYTES = MAX_FILE_BYTES


class SourceTree:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._checked = False

    def check_confined(self) -> None:
        """Refuse the whole tree (TreeFileRefused) if any link in it leaves it or it
        holds a special file; once, before the first program Berth does not control
        (a buildpack script) reads it."""
        if not self._checked:
            treefile.check_tree(self.root)
            self._checked = True

    def _stat(self, relative: str) -> os.stat_result | None:
        path = treefile.locate(self.root, relative)
        if path is None:
            return None
        try:
            return os.stat(path, follow_symlinks=False)
        except OSError:
            return None

    def is_file(self, relative: str) -> bool:
        """A regular file is there. A FIFO, device or socket is refused (TreeFileRefused),
        never taken for absent; so is a link leaving the tree."""
        info = self._stat(relative)
        if info is None or stat.S_ISDIR(info.st_mode):
            return False
        if not stat.S_ISREG(info.st_mode):
            raise TreeFileRefused(relative, "not a regular file")
        return True

    def is_dir(self, relative: str) -> bool:
        info = self._stat(relative)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def read_text(self, relative: str, *, cap: int = MAX_READ_BYTES) -> str | None:
        """The file's text, or None when it is absent; refused (TreeFileRefused) when it
        leaves the tree, is not a regular file, is larger than `cap` or not UTF-8."""
        return treefile.read_text(self.root, relative, cap=cap)

    def read_head(self, relative: str, size: int) -> str | None:
        """At most the first `size` bytes of a file of any size, as text (a lockfile's
        version line); None when it is absent."""
        return treefile.read_text(self.root, relative, cap=size, head=True)

    def names(self, relative: str = "") -> tuple[str, ...]:
        """Sorted entry names of a directory of the tree (empty when not a directory)."""
        path = treefile.locate(self.root, relative) if relative else self.root
        if path is None or not path.is_dir():
            return ()
        return tuple(sorted(entry.name for entry in path.iterdir()))
