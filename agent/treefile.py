"""The one way Berth reads a file of a pushed tree.

A push decides what is in the tree, and the agent runs as root: `Procfile` may be a
symbolic link to /dev/zero or to a root-only file, a FIFO, or a 2 GiB file. Every file
Berth reads from a pushed tree (Procfile, app.json, runtime.txt, .python-version,
package.json, lockfiles, buildpack detection, .dockerignore) goes through `read_bytes`,
which

- follows symbolic links only while they stay inside the tree (a chain is followed link
  by link; a link that leaves the tree, loops, or is too long a chain is refused),
- refuses anything but a regular file (FIFOs, devices, sockets), opened with O_NONBLOCK
  and O_NOFOLLOW so that even a swapped path cannot block or leave the tree,
- refuses a file larger than its cap, naming the file and the cap.

`check_tree` applies the same rules to a whole tree before a buildpack script, which
reads what it likes, is run on it. It is all blocking: callers on the event loop run it in a worker thread. Every refusal is a
`TreeFileRefused`, one line naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from agent.errors import BerthError

MAX_FILE_BYTES = 1024 * 1024  # the default cap: manifests and Procfiles are small
MAX_LINKS = 16  # symbolic links followed for one path


class TreeFileRefused(BerthError):
    """A file of a pushed tree that Berth will not read."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"pushed file {name} refused: {problem}")
        self.name = name
        self.problem = problem


def describe_cap(cap: int) -> str:
    """A cap in the unit a user reads best ("1 MiB", "64 KiB", "100 bytes")."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if cap >= size and cap % size == 0:
            return f"{cap // size} {unit}"
    return f"{cap} bytes"


def locate(root: Path, relative: str) -> Path | None:
    """The real path of `relative` inside the tree at `root` (links followed, each one
    checked), or None when nothing is there. Raises TreeFileRefused for a path or link
    that leaves the tree, a loop, or a chain longer than MAX_LINKS."""
    base = Path(os.path.realpath(root))
    pending = list(_parts(relative, relative))
    current = base
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current == base:
                raise TreeFileRefused(relative, "its path leaves the pushed tree")
            current = current.parent
            continue
        candidate = current / part
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise TreeFileRefused(relative, f"more than {MAX_LINKS} symbolic links (a loop?)")
        target = os.readlink(candidate)
        if target.startswith("/"):
            absolute = Path(os.path.normpath(target))
            if absolute != base and not absolute.is_relative_to(base):
                raise TreeFileRefused(relative, f"symbolic link to {target}, outside the "
                                      "pushed tree")
            current = base
            target = absolute.relative_to(base).as_posix()
        pending[:0] = _parts(target, relative)
    return current


def _parts(path: str, name: str) -> list[str]:
    if "\x00" in path:
        raise TreeFileRefused(name, "its path holds a NUL byte")
    return [p for p in PurePosixPath(path).parts if p not in ("/", ".", "")]


def read_bytes(root: Path, relative: str, *, cap: int = MAX_FILE_BYTES,
               head: bool = False) -> bytes | None:
    """The content of `relative` in the tree at `root`, or None when it is absent.

    With `head`, a larger file is not refused: its first `cap` bytes are returned.
    Raises TreeFileRefused (see the module's docstring).
    """
    path = locate(root, relative)
    if path is None:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TreeFileRefused(relative, "changed into a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise TreeFileRefused(relative, "a directory, not a file") from None
        raise TreeFileRefused(relative, f"cannot open it: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TreeFileRefused(relative, f"{_kind(info.st_mode)}, not a regular file")
        if info.st_size > cap and not head:
            raise TreeFileRefused(relative, f"larger than its cap of {describe_cap(cap)}")
        data = _read_at_most(fd, cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        if not head:
            raise TreeFileRefused(relative, f"larger than its cap of {describe_cap(cap)}")
        data = data[:cap]
    return data


def read_text(root: Path, relative: str, *, cap: int = MAX_FILE_BYTES,
              head: bool = False) -> str | None:
    """`read_bytes` decoded as UTF-8 (a BOM dropped); refused when it is not UTF-8."""
    data = read_bytes(root, relative, cap=cap, head=head)
    if data is None:
        return None
    try:
        return data.decode("utf-8-sig", errors="strict" if not head else "ignore")
    except UnicodeDecodeError:
        raise TreeFileRefused(relative, "not UTF-8 text") from None


def check_tree(root: Path) -> None:
    """Refuse (TreeFileRefused) a tree holding a link that leaves it, a link loop, or
    anything but directories, regular files and links: before a program Berth does not
    control (a buildpack script) reads the tree as it likes."""
    base = os.path.realpath(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, base)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                locate(Path(base), relative)
            elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise TreeFileRefused(relative, f"{_kind(mode)}, not a regular file")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
