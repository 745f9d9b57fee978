"""Writing Berth's own files where the `berth` user can also write, without following it.

The agent runs as root; the `berth` account faces the Internet and owns the apps'
repositories and its ~/.ssh. A compromised `berth` could turn `APP.git/hooks` or `.ssh`
into a symbolic link to /etc, and a root that writes, chmods or chowns by path would
follow it. Here the part of a path the admin chose (data_dir, the home directory) is
trusted as it is; everything under it is opened one component at a time with
O_NOFOLLOW, checked to be a directory owned by an allowed user, and written through
directory descriptors: a temporary file created with O_EXCL|O_NOFOLLOW, its mode and
owner set on the descriptor, then renamed over the target. A symbolic link or a foreign
owner on the way is refused with `UnsafePath`, one line naming the path.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from agent.errors import BerthError

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(BerthError):
    """A path Berth would write through is a symbolic link or someone else's."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"refusing to write through {path}: {problem}")
        self.path = path
        self.problem = problem


@contextmanager
def directory(trusted: Path, relative: str, *, owners: Collection[int],
              create: int | None = None) -> Iterator[int]:
    """A descriptor of the directory `trusted`/`relative`: `trusted` is taken as it is,
    each component of `relative` is opened with O_NOFOLLOW and must be a directory owned
    by one of `owners`. With `create` (a mode), missing components are made."""
    fd = os.open(trusted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    current = trusted
    try:
        for part in PurePosixPath(relative).parts:
            current = current / part
            if create is not None:
                try:
                    os.mkdir(part, create, dir_fd=fd)
                except FileExistsError:
                    pass
            child = _open_child(fd, part, current)
            os.close(fd)
            fd = child
            _check_owner(fd, current, owners)
        yield fd
    finally:
        os.close(fd)


def _open_child(fd: int, part: str, path: Path) -> int:
    try:
        return os.open(part, _DIRECTORY, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if os.path.islink(path) else "not a directory"
            raise UnsafePath(path, kind) from None
        raise


def _check_owner(fd: int, path: Path, owners: Collection[int]) -> None:
    uid = os.fstat(fd).st_uid
    if uid not in owners:
        raise UnsafePath(path, f"owned by uid {uid}, not by {_names(owners)}")


def _names(owners: Collection[int]) -> str:
    return " or ".join(f"uid {uid}" for uid in sorted(owners))


def read_file(dir_fd: int, name: str, path: Path, *, owners: Collection[int],
              cap: int = 4 << 20) -> bytes | None:
    """The content of `name` in the directory `dir_fd` (None when absent); a symbolic
    link, a non-regular file, a foreign owner or more than `cap` bytes is refused."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(path, "a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(path, "not a regular file")
        if info.st_uid not in owners:
            raise UnsafePath(path, f"owned by uid {info.st_uid}, not by {_names(owners)}")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise UnsafePath(path, f"larger than {cap // (1 << 20)} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def replace_file(dir_fd: int, name: str, data: bytes, *, mode: int,
                 uid: int = -1, gid: int = -1) -> None:
    """Write `data` to a new file in `dir_fd` (O_EXCL|O_NOFOLLOW), set its mode and owner
    on the descriptor, and rename it over `name`: whatever `name` was (a symbolic link
    included) is replaced, never written through."""
    temporary = f".{name}.{secrets.token_hex(6)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
