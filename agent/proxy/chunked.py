"""Finding the end of a chunked response body as it streams past (sans-io).

The proxy forwards a chunked body from an upstream byte for byte (no re-encoding, no
copy); it only needs to know where the body ends, so that the upstream connection can be
reused and the client's next response starts at the right byte. `ChunkedScanner` walks the
chunk framing across reads. For an HTTP/1.0 client, which cannot read chunked framing, it
also hands out the data pieces so the proxy can send them bare.
"""

from __future__ import annotations

import re

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
_MAX_LINE = 4096
_MAX_TRAILER = 16 * 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class ChunkedError(Exception):
    """The chunk framing is broken."""


class ChunkedScanner:
    __slots__ = ("_line", "_remaining", "_state", "_trailer_bytes")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line = b""
        self._trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes, pieces: list[memoryview] | None = None) -> int:
        """Scan `data`; the offset just past the body's end, or -1 if it goes on.

        With `pieces`, the chunk data inside `data` is appended to it.
        """
        pos = 0
        size = len(data)
        view = memoryview(data) if pieces is not None else None
        while pos < size:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, size - pos)
                if view is not None and pieces is not None:
                    pieces.append(view[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_END
                continue
            if state == _DONE:
                return pos
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_LINE:
                    raise ChunkedError("chunk line too long")
                return -1
            line = self._line + data[pos : end + 1] if self._line else data[pos : end + 1]
            self._line = b""
            pos = end + 1
            self._take_line(line)
        return pos if self._state == _DONE else -1

    def _take_line(self, line: bytes) -> None:
        if len(line) > _MAX_LINE or not line.endswith(b"\r\n"):
            raise ChunkedError("chunk line without CRLF")
        state = self._state
        if state == _SIZE:
            digits = line[:-2].split(b";", 1)[0].rstrip(b" \t")
            if _HEX.fullmatch(digits) is None:
                raise ChunkedError(f"invalid chunk size {digits[:20]!r}")
            self._remaining = int(digits, 16)
            self._state = _DATA if self._remaining else _TRAILER
        elif state == _DATA_END:
            if line != b"\r\n":
                raise ChunkedError("chunk data longer than its size")
            self._state = _SIZE
        else:  # _TRAILER
            self._trailer_bytes += len(line)
            if self._trailer_bytes > _MAX_TRAILER:
                raise ChunkedError("trailer too large")
            if line == b"\r\n":
                self._state = _DONE
