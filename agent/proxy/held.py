"""Bytes an exchange keeps back until they can go on (a request body while the upstream
connection opens, bytes after an Upgrade head until the app answers), and how many."""

from __future__ import annotations


class Held:
    """Bytes kept back until they can go on, and how many."""

    __slots__ = ("pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> int:
        self.pieces.append(data)
        self.size += len(data)
        return self.size


def encode_chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)
