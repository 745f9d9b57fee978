"""The engine's multiplexed output stream (attach without a terminal), decoded. Pure.

Each frame is an 8-byte header (stream: 1 stdout, 2 stderr; three zero bytes; a 4-byte
big-endian length) and that many bytes. `FrameDecoder` takes bytes as they arrive from
the socket and hands back (stream, data) pieces, consecutive pieces of one stream
merged up to `max_piece` bytes: a process writing 4 KiB at a time makes 25,000 frames
per 100 MB, and handing each across threads on its own would cost more than the data.
"""

from __future__ import annotations

from collections.abc import Callable

STDOUT, STDERR = 1, 2
HEADER = 8


class FrameDecoder:
    """Bytes in, (stream, data) pieces out; nothing is lost or reordered."""

    def __init__(self, max_piece: int = 256 * 1024) -> None:
        self._buffer = bytearray()
        self._stream = 0
        self._left = 0  # bytes of the current frame's body still to come
        self._max_piece = max_piece

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The complete pieces `data` finished (a piece may end mid-frame)."""
        self._buffer += data
        pieces: list[tuple[int, list[bytes], int]] = []  # stream, parts, size
        while True:
            if self._left == 0:
                if len(self._buffer) < HEADER:
                    break
                self._stream = self._buffer[0] if self._buffer[0] in (STDOUT, STDERR) else STDOUT
                self._left = int.from_bytes(self._buffer[4:8], "big")
                del self._buffer[:HEADER]
                continue
            if not self._buffer:
                break
            take = bytes(self._buffer[:min(self._left, len(self._buffer))])
            del self._buffer[:len(take)]
            self._left -= len(take)
            if pieces and pieces[-1][0] == self._stream and (
                    pieces[-1][2] + len(take) <= self._max_piece):
                stream, parts, size = pieces[-1]
                parts.append(take)
                pieces[-1] = (stream, parts, size + len(take))
            else:
                pieces.append((self._stream, [take], len(take)))
        return [(stream, b"".join(parts)) for stream, parts, _ in pieces]

    @property
    def pending(self) -> int:
        """Bytes held back: an incomplete header (a stream that ended mid-frame)."""
        return len(self._buffer)



class LineSplitter:
    """Bytes in, text lines out to `emit` (a last unterminated line at `close`)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._pending = b""

    def feed(self, data: bytes) -> None:
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self._emit(line.decode("utf-8", "replace"))

    def close(self) -> None:
        if self._pending:
            self._emit(self._pending.decode("utf-8", "replace"))
            self._pending = b""
