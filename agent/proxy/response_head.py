"""Reading upstream response heads and writing the client's (sans-io).

`parse_response_head` takes the raw head bytes (status line to the blank line), refuses
anything that is not a well-formed HTTP/1.x head (the caller answers 502), works out how
the body is framed, and keeps the header lines to forward with hop-by-hop headers cut
out. `client_response_head` renders the head the client gets. Both are pure; the
connection code only finds the blank line and counts bytes.

Heads are read line by line, and what a line turned out to be (well-formed or not, which
header the proxy acts on, its value) is a pure function of its bytes, so a `HeadMemo`
remembers it: an upstream repeats most lines from one response to the next (Server,
Content-Type, Connection, Date within a second), and a remembered line costs one dict
lookup instead of a regex match. The memo is bounded: short lines only, and it is
cleared when full.
"""

from __future__ import annotations

import re

# A head: this status line, `token:value` lines, a blank line (reason and values: HTAB,
# SP, visible ASCII, obs-text).
_STATUS = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t\x20-\x7e\x80-\xff]*")

# What a header line is to the proxy (any other name: forwarded untouched).
_FORWARD, _LENGTH, _CONNECTION, _CODING, _UPGRADE, _HSTS, _HOP = range(7)
_KINDS = {
    b"content-length": _LENGTH,
    b"connection": _CONNECTION,
    b"transfer-encoding": _CODING,
    b"upgrade": _UPGRADE,
    b"strict-transport-security": _HSTS,
    b"keep-alive": _HOP,
    b"proxy-connection": _HOP,
}
_MEMO_SIZE = 4096  # lines remembered (then forgotten all at once)
_MEMO_LINE = 200  # longer lines are read every time (bounds the memo's memory: ~1 MiB)

# Body framing, in the order RFC 9112 section 6.3 decides it.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)

HSTS_LINE = b"Strict-Transport-Security: max-age=31536000\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"

# A header line, read: its kind, its value (blanks stripped; lowercased for Connection
# and Transfer-Encoding) and, for Content-Length, the number.
_Line = tuple[int, bytes, int]
_PLAIN: _Line = (_FORWARD, b"", -1)
# A status line, read: HTTP/1.0?, the status, the line the client gets (as HTTP/1.1).
_Status = tuple[bool, int, bytes]


class HeadMemo:
    """What lines of earlier heads turned out to be; shared by a proxy's connections."""

    __slots__ = ("lines", "status_lines")

    def __init__(self) -> None:
        self.lines: dict[bytes, _Line] = {}
        self.status_lines: dict[bytes, _Status] = {}


class BadResponse(Exception):
    """The upstream's answer is not HTTP we can forward (the client gets 502)."""


class ResponseHead:
    __slots__ = ("framing", "has_hsts", "keep_alive", "length", "lines", "reason_line", "status")

    def __init__(
        self,
        status: int,
        reason_line: bytes,
        lines: bytes,
        framing: int,
        length: int,
        keep_alive: bool,
        has_hsts: bool,
    ) -> None:
        self.status = status
        self.reason_line = reason_line  # b"HTTP/1.1 200 OK\r\n", version normalised
        self.lines = lines  # header lines to forward, each ending in CRLF
        self.framing = framing
        self.length = length  # body bytes when framing == LENGTH
        self.keep_alive = keep_alive  # the upstream connection may be reused afterwards
        self.has_hsts = has_hsts

    @property
    def interim(self) -> bool:
        """A 1xx other than 101: forwarded, then the real response follows."""
        return self.status < 200 and self.status != 101


def parse_response_head(
    raw: bytes, *, head_request: bool, dechunk: bool, memo: HeadMemo | None = None
) -> ResponseHead:
    """Parse an upstream head; `dechunk` drops Transfer-Encoding (HTTP/1.0 clients)."""
    memo = memo if memo is not None else HeadMemo()
    lines = raw.split(b"\r\n")  # ends with two empty pieces for a head that ends in CRLF CRLF
    if len(lines) < 3 or lines[-1] or lines[-2]:
        raise BadResponse("malformed response head")
    status_line = lines[0]
    http10, status, reason_line = memo.status_lines.get(status_line) or _read_status(
        status_line, memo
    )
    header_lines, known = lines[1:-2], memo.lines
    close, length = http10, -1
    chunked = coded = has_hsts = False
    kept: list[bytes] | None = None  # the lines to forward, once one is cut
    named: list[bytes] = []
    for line in header_lines:
        read = known.get(line) or _read_line(line, known)
        kind = read[0]
        if kind == _FORWARD:  # most lines: forwarded as they are
            if kept is not None:
                kept.append(line)
            continue
        _, value, number = read
        if kind == _LENGTH:
            if length >= 0 and number != length:
                raise BadResponse("conflicting Content-Length")
            length = number
        elif kind == _HSTS:
            has_hsts = True
        elif kind == _CODING:
            coded = True
            chunked = value.rsplit(b",", 1)[-1].strip(b" \t") == b"chunked"
            if dechunk:
                kind = _HOP
        elif kind == _UPGRADE:
            if status != 101:
                kind = _HOP
        elif kind == _CONNECTION:
            if value == b"keep-alive":  # the common case, without a token loop
                close = False
            else:
                close, named = _connection_tokens(value, close, named)
            kind = _HOP
        if kind == _HOP:
            if kept is None:
                # Lines before this one are kept (an equal line before it was cut too).
                kept = header_lines[: header_lines.index(line)]
        elif kept is not None:
            kept.append(line)
    if coded and length >= 0:
        raise BadResponse("both Transfer-Encoding and Content-Length")
    forwarded = raw[len(status_line) + 2 : -2] if kept is None else _forwarded(kept, named)
    if head_request or status < 200 or status == 204 or status == 304:  # RFC 9112 6.3
        framing = NO_BODY
    else:
        framing = CHUNKED if chunked else UNTIL_CLOSE if coded or length < 0 else LENGTH
    keep_alive = not close and framing != UNTIL_CLOSE and status != 101
    return ResponseHead(status, reason_line, forwarded, framing, length, keep_alive, has_hsts)


def _forwarded(kept: list[bytes], named: list[bytes]) -> bytes:
    """The header lines to forward once some were cut: those kept, less those named.
    (Most heads forward every line: `parse_response_head` slices them, without a call.)"""
    forwarded = b"\r\n".join(kept) + b"\r\n" if kept else b""
    return _drop_named(forwarded, named) if named else forwarded


def _read_status(line: bytes, memo: HeadMemo) -> _Status:
    match = _STATUS.fullmatch(line)
    if match is None:
        raise BadResponse("malformed response head")
    http10 = match.group(1) == b"0"
    read = (http10, int(match.group(2)), (b"HTTP/1.1" + line[8:] if http10 else line) + b"\r\n")
    if len(line) <= _MEMO_LINE:
        if len(memo.status_lines) >= _MEMO_SIZE:
            memo.status_lines.clear()
        memo.status_lines[line] = read
    return read


def _read_line(line: bytes, known: dict[bytes, _Line]) -> _Line:
    match = _LINE.fullmatch(line)
    if match is None:
        raise BadResponse("malformed response head")
    kind = _KINDS.get(match.group(1).lower(), _FORWARD)
    if kind == _FORWARD:
        read = _PLAIN
    else:
        value = line[match.end(1) + 1 :].strip(b" \t")
        number = -1
        if kind == _LENGTH:
            if not value.isdigit() or len(value) > 18:
                raise BadResponse("invalid Content-Length")
            number = int(value)
        elif kind == _CONNECTION or kind == _CODING:
            value = value.lower()
        read = (kind, value, number)
    if len(line) <= _MEMO_LINE:
        if len(known) >= _MEMO_SIZE:
            known.clear()
        known[line] = read
    return read


def _connection_tokens(value: bytes, close: bool, named: list[bytes]) -> tuple[bool, list[bytes]]:
    for token in value.split(b","):
        token = token.strip().lower()
        if token == b"close":
            close = True
        elif token == b"keep-alive":
            close = False
        elif token and token != b"upgrade":
            named = [*named, token]
    return close, named


def _drop_named(lines: bytes, named: list[bytes]) -> bytes:
    kept = [
        line + b"\r\n"
        for line in lines.split(b"\r\n")[:-1]
        if line.split(b":", 1)[0].lower() not in named
    ]
    return b"".join(kept)


def client_response_head(head: ResponseHead, extra: bytes) -> bytes:
    """The head the client gets: status line, forwarded lines, `extra` lines, blank line."""
    return head.reason_line + head.lines + extra + b"\r\n"


def client_lines(
    head: ResponseHead, keep_alive: bool, http_1_0: bool, hsts: bool
) -> tuple[bool, bytes]:
    """Whether the client connection stays open after `head`'s response (`keep_alive`: it
    may, as far as the request goes), and the header lines the proxy adds to its copy."""
    keep_alive = (
        keep_alive
        and head.framing != UNTIL_CLOSE
        and not (http_1_0 and head.framing == CHUNKED)  # a 1.0 client cannot read chunks
    )
    if not keep_alive:
        extra = _CLOSE
    elif http_1_0:
        extra = _KEEP_ALIVE
    else:
        extra = b""
    if hsts and not head.has_hsts:
        extra += HSTS_LINE
    return keep_alive, extra
