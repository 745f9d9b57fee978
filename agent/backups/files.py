"""Writing a backup file safely, and checking one (blocking: called in threads).

A dump is written to a temp name in the same directory while its SHA-256 and size are
counted, flushed to disk, then renamed into place: a file under a backup's name is
always complete.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1024 * 1024


class HashingWriter:
    """A file object that counts and hashes what goes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._handle.write(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def open_temp(final: Path) -> BinaryIO:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(temp_path(final), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def commit(handle: BinaryIO, final: Path) -> None:
    """Flush the temp file to disk and rename it to `final`."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(temp_path(final), final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def discard(handle: BinaryIO, final: Path) -> None:
    """Remove the temp file, even when closing it fails (a full disk refuses the flush)."""
    try:
        handle.close()
    finally:
        temp_path(final).unlink(missing_ok=True)


def copy_hashing(source: Path, writer: HashingWriter) -> None:
    with source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            writer.write(chunk)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
