"""HTTP/1.1 over the agent's unix socket: one request per connection, socket module only.

The CLI and the git hook talk to exactly one server, the agent's uvicorn, and every
push pays for the client's start: http.client alone costs ~20 ms of imports (its email
parser), more than everything else the hook loads. So this speaks the small part of
HTTP/1.1 they need: a request with a JSON, raw or chunked-streamed body and
`Connection: close`; an answer framed by Content-Length, chunked encoding or the end of
the connection, read whole or as lines while they arrive (NDJSON event streams).

Errors are OSError (the socket) or `ProtocolError` (an answer that is not HTTP/1.1);
the caller (`agent.cli.client`) turns them into one line for the user.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterable, Iterator

_MAX_LINE = 64 * 1024


class ProtocolError(Exception):
    """The agent's answer is not the HTTP this module reads."""


class Answer:
    """A response: `status`, lower-cased `headers`, then the body once."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file: io.BufferedReader = sock.makefile("rb")
        try:
            self._read_head()
        except BaseException:
            self._file.close()  # the socket's fd stays open while its file is
            raise

    def _read_head(self) -> None:
        status_line = self._line()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP answer: {status_line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while line := self._line().rstrip(b"\r\n"):
            name, _, value = line.partition(b":")
            self.headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()

    def _line(self) -> bytes:
        line = self._file.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise ProtocolError("the agent's answer ended inside a line")
        return line

    def pieces(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while size := _number(self._line().split(b";", 1)[0], 16):
                piece = self._file.read(size)
                if len(piece) != size:
                    raise ProtocolError("the agent's answer ended inside a chunk")
                self._line()  # the CRLF after the chunk
                yield piece
            return
        length = self.headers.get("content-length")
        if length is not None:
            size = _number(length.encode("latin-1"), 10)
            body = self._file.read(size)
            if len(body) != size:
                raise ProtocolError("the agent's answer is shorter than it said")
            yield body
            return
        while piece := self._file.read1(64 * 1024):
            yield piece

    def read(self) -> bytes:
        return b"".join(self.pieces())

    def lines(self) -> Iterator[bytes]:
        """The body's lines (without their newline), each as soon as it is complete."""
        pending = b""
        for piece in self.pieces():
            pending += piece
            *complete, pending = pending.split(b"\n")
            yield from complete
        if pending:
            yield pending

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def _number(text: bytes, base: int) -> int:
    try:
        number = int(text.strip(), base)
    except ValueError:
        raise ProtocolError(f"not a length: {text[:20]!r}") from None
    if number < 0:
        raise ProtocolError(f"not a length: {text[:20]!r}")
    return number


def request(
    socket_path: str, method: str, target: str, *, headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None, timeout: float | None = None,
) -> Answer:
    """Send one request and read the answer's head; the caller closes the `Answer`.

    A `bytes` body goes with Content-Length, an iterable one chunked as it is produced.
    If the agent answers (an error, say) and closes before the body is all sent, that
    answer is returned rather than the broken pipe."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        streamed = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}")
        elif streamed:
            head.append("Transfer-Encoding: chunked")
        sent = "\r\n".join(head).encode("latin-1") + b"\r\n\r\n"
        try:
            if isinstance(body, bytes):
                sock.sendall(sent + body)
            elif body is not None:
                sock.sendall(sent)
                for chunk in body:
                    if chunk:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(sent)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent stopped reading: its answer, if any, says why
        return Answer(sock)
    except BaseException:
        sock.close()
        raise
