"""Writing a server archive, and unpacking one with every member checked (blocking: run
in worker threads).

Writing: each file is read once, without following links, and its size and SHA-256 are
counted as it goes into the tar; the manifest, made from those counts, is the last
member. Unpacking: only files, directories and (under storage/) symbolic links are
accepted; a member whose path is absolute, climbs out, lies outside the archive's
sections or passes through a link is refused, nothing is ever written through a link,
and the archive may not hold more than the `budget` bytes of files. The manifest is read
with the same reader as a pushed tree's files (agent.treefile: a regular file, no link,
capped) and must list exactly what was unpacked.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent import treefile
from agent.errors import BerthError
from agent.serverbackup.manifest import (
    LINK_SECTIONS,
    MANIFEST,
    AddonEntry,
    BadServerArchive,
    FileEntry,
    Manifest,
    Unpacked,
    check_member,
    compare,
    parse,
)

_CHUNK = 1024 * 1024
MANIFEST_CAP = 64 * 1024 * 1024


class ChangedWhileReading(BerthError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} changed while it was being backed up: run the backup again")


@dataclass(frozen=True)
class Source:
    """A file or directory tree of the server and its name in the archive."""

    name: str
    path: Path


class _Hashing(io.RawIOBase):
    """Reads exactly `size` bytes of `handle`, counting their SHA-256."""

    def __init__(self, handle: BinaryIO, size: int, name: str) -> None:
        self._handle, self._left, self._name = handle, size, name
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(want) if want else b""
        if len(data) != want:
            raise ChangedWhileReading(self._name)
        self._left -= len(data)
        self.digest.update(data)
        return data


def write(sink: BinaryIO, sources: Iterable[Source], *, berth_version: str,
          apps: Iterable[str], addons: Iterable[AddonEntry]) -> Manifest:
    """Write the tar of `sources` (files, or trees walked without following links) and
    its manifest to `sink`; return the manifest."""
    files: list[FileEntry] = []
    dirs: list[str] = []
    links: list[tuple[str, str]] = []
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for source in sources:
            for name, path, info in _walk(source):
                if stat.S_ISDIR(info.st_mode):
                    dirs.append(name)
                    tar.addfile(_info(name, tarfile.DIRTYPE, info))
                elif stat.S_ISLNK(info.st_mode):
                    target = os.readlink(path)
                    links.append((name, target))
                    member = _info(name, tarfile.SYMTYPE, info)
                    member.linkname = target
                    tar.addfile(member)
                else:
                    files.append(_add_file(tar, name, path))
        manifest = Manifest(berth_version=berth_version, created_at=time.time(),
                            apps=tuple(apps), addons=tuple(addons), files=tuple(files),
                            dirs=tuple(dirs), links=tuple(links))
        raw = manifest.to_json()
        member = _info(MANIFEST, tarfile.REGTYPE, None)
        member.size = len(raw)
        tar.addfile(member, io.BytesIO(raw))
    return manifest


def _walk(source: Source) -> Iterable[tuple[str, Path, os.stat_result]]:
    """(name, path, lstat) of the source and, for a tree, everything under it; links
    only where links belong, special files never."""
    try:
        top = os.lstat(source.path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        if stat.S_ISREG(top.st_mode):
            yield source.name, source.path, top
        return
    links_allowed = source.name.split("/")[0] in LINK_SECTIONS
    yield source.name, source.path, top
    for root, dirnames, filenames in os.walk(source.path):
        dirnames.sort()
        relative = Path(root).relative_to(source.path)
        for entry in sorted(dirnames) + sorted(filenames):
            path = Path(root) / entry
            info = os.lstat(path)
            kind = info.st_mode
            if stat.S_ISDIR(kind) or stat.S_ISREG(kind) or (stat.S_ISLNK(kind) and links_allowed):
                yield f"{source.name}/{(relative / entry).as_posix()}", path, info


def _info(name: str, kind: bytes, info: os.stat_result | None) -> tarfile.TarInfo:
    """A member with the file's permission bits and numeric owner (root's 0600 for the
    manifest)."""
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = info.st_mode & 0o777 if info else 0o600
    member.uid, member.gid = (info.st_uid, info.st_gid) if info else (0, 0)
    member.mtime = int(info.st_mtime if info else time.time())
    return member


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> FileEntry:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        member = _info(name, tarfile.REGTYPE, info)
        member.size = info.st_size
        reader = _Hashing(handle, info.st_size, name)
        tar.addfile(member, reader)
    return FileEntry(path=name, size=info.st_size, sha256=reader.digest.hexdigest(),
                     mode=info.st_mode & 0o777)


# unpacking ---------------------------------------------------------------------------


def unpack(archive: Path, staging: Path, *, budget: int) -> Manifest:
    """Unpack `archive` into the empty directory `staging`, checking every member, and
    return its manifest once what was unpacked matches it."""
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = Unpacked()
    owners: dict[str, tuple[int, int, int]] = {}  # name -> mode, uid, gid
    total = 0
    try:
        with archive.open("rb") as source, tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                name = check_member(member.name, link=member.issym())
                target = _target(staging, name, member)
                owners[name] = (member.mode & 0o777, member.uid, member.gid)
                if member.isdir():
                    target.mkdir(mode=0o700, exist_ok=True)
                    found.dirs.add(name)
                elif member.issym():
                    os.symlink(member.linkname, target)
                    found.links[name] = member.linkname
                elif member.isfile():
                    total += member.size
                    if total > budget:
                        raise BadServerArchive(f"it holds more than {budget} bytes, more "
                                               "than this server has room for")
                    found.files[name] = _extract(tar, member, target)
                else:
                    raise BadServerArchive(f"{name}: only files, directories and links")
    except tarfile.TarError as exc:
        raise BadServerArchive(f"not a complete tar archive ({exc})") from None
    try:
        raw = treefile.read_bytes(staging, MANIFEST, cap=MANIFEST_CAP)
    except treefile.TreeFileRefused as exc:
        raise BadServerArchive(f"{MANIFEST}: {exc.problem}") from None
    if raw is None:
        raise BadServerArchive(f"it holds no {MANIFEST}")
    found.files.pop(MANIFEST, None)
    manifest = parse(raw)
    compare(manifest, found)
    owners.pop(MANIFEST, None)
    _apply_owners(staging, owners, found.links)
    return manifest


def _target(root: Path, name: str, member: tarfile.TarInfo) -> Path:
    """Where `name` goes: every ancestor a real directory, never there twice."""
    current = root
    parts = name.split("/")
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise BadServerArchive(f"{name}: its path passes through a symbolic link")
        if not current.is_dir():
            current.mkdir(mode=0o700)
    target = root / name
    if target.is_symlink() or (target.exists() and not member.isdir()):
        raise BadServerArchive(f"{name}: appears twice")
    return target


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> tuple[int, str]:
    source = tar.extractfile(member)
    assert source is not None
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as sink:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    return size, digest.hexdigest()


def _apply_owners(staging: Path, owners: dict[str, tuple[int, int, int]],
                  links: dict[str, str]) -> None:
    """Each member gets its recorded owner and permission bits (never set-id bits; a
    link's target is never touched), deepest first so directories close last."""
    chown = os.geteuid() == 0
    for name in sorted(owners, key=lambda n: n.count("/"), reverse=True):
        mode, uid, gid = owners[name]
        path = staging / name
        if chown:
            os.chown(path, uid, gid, follow_symlinks=False)
        if name not in links:
            os.chmod(path, mode)
