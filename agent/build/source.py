"""Read-only access to a pushed source tree that never leaves it.

The tree comes from a user's push: a symlink named `requirements.txt` may point at
/etc/shadow. Every read resolves the path and refuses anything outside the root, and
reads are capped in size, so buildpack inspection cannot be used to read host files.
"""

from __future__ import annotations

from pathlib import Path

MAX_READ_BYTES = 1024 * 1024


class SourceTree:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _inside(self, relative: str) -> Path | None:
        path = (self.root / relative).resolve()
        if path != self.root and not path.is_relative_to(self.root):
            return None
        return path

    def is_file(self, relative: str) -> bool:
        path = self._inside(relative)
        return path is not None and path.is_file()

    def is_dir(self, relative: str) -> bool:
        path = self._inside(relative)
        return path is not None and path.is_dir()

    def read_text(self, relative: str) -> str | None:
        """The file's text, or None when it is absent, outside the tree, or not UTF-8."""
        path = self._inside(relative)
        if path is None or not path.is_file():
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_READ_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_READ_BYTES:
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None

    def names(self, relative: str = "") -> tuple[str, ...]:
        """Sorted entry names of a directory of the tree (empty when not a directory)."""
        path = self._inside(relative)
        if path is None or not path.is_dir():
            return ()
        return tuple(sorted(entry.name for entry in path.iterdir()))
