"""Reading upstream response heads and writing the client's (sans-io).

`parse_response_head` takes the raw head bytes (status line to the blank line), refuses
anything that is not a well-formed HTTP/1.x head (the caller answers 502), works out how
the body is framed, and keeps the header lines to forward with hop-by-hop headers cut
out. `client_response_head` renders the head the client gets. Both are pure; the
connection code only finds the blank line and counts bytes.
"""

from __future__ import annotations

import re

_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?\r\n"
    rb"((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
# The header lines the proxy acts on, found in the lowercased head (every other line is
# forwarded untouched).
_SPECIAL = re.compile(
    rb"\n(connection|keep-alive|proxy-connection|transfer-encoding|content-length|upgrade"
    rb"|strict-transport-security):"
)

# Body framing, in the order RFC 9112 section 6.3 decides it.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)

HSTS_LINE = b"Strict-Transport-Security: max-age=31536000\r\n"


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


def parse_response_head(raw: bytes, *, head_request: bool, dechunk: bool) -> ResponseHead:
    """Parse an upstream head; `dechunk` drops Transfer-Encoding (HTTP/1.0 clients)."""
    match = _HEAD.fullmatch(raw)
    if match is None:
        raise BadResponse("malformed response head")
    status = int(match.group(2))
    minor = match.group(1)
    first = match.start(3)  # offset of the first header line in `raw`
    close = minor == b"0"
    length = -1
    chunked = coded = has_hsts = False
    cuts: list[tuple[int, int]] = []
    named: list[bytes] = []
    for special in _SPECIAL.finditer(raw.lower(), first - 1):
        name = special.group(1)
        begin = special.end()
        end = raw.index(b"\r\n", begin)
        value = raw[begin:end].strip(b" \t")
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise BadResponse("invalid Content-Length")
            number = int(value)
            if length >= 0 and number != length:
                raise BadResponse("conflicting Content-Length")
            length = number
            continue
        if name == b"transfer-encoding":
            coded = True
            chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            if not dechunk:
                continue
        elif name == b"strict-transport-security":
            has_hsts = True
            continue
        elif name == b"upgrade":
            if status == 101:
                continue
        elif name == b"connection":
            if value == b"keep-alive":  # the common case, without a token loop
                close = False
            else:
                close, named = _connection_tokens(value, close, named)
        cuts.append((special.start() + 1, end + 2))
    if coded and length >= 0:
        raise BadResponse("both Transfer-Encoding and Content-Length")
    lines = _cut(raw, first, match.end(3), cuts) if cuts else match.group(3)
    if named:
        lines = _drop_named(lines, named)
    if head_request or status < 200 or status == 204 or status == 304:
        framing = NO_BODY
    elif chunked:
        framing = CHUNKED
    elif coded or length < 0:
        framing = UNTIL_CLOSE
    else:
        framing = LENGTH
    reason_line = raw[:first]
    if minor == b"0":
        reason_line = b"HTTP/1.1" + reason_line[8:]
    keep_alive = not close and framing != UNTIL_CLOSE and status != 101
    return ResponseHead(status, reason_line, lines, framing, length, keep_alive, has_hsts)


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


def _cut(raw: bytes, start: int, stop: int, spans: list[tuple[int, int]]) -> bytes:
    """raw[start:stop] without the spans (absolute offsets, in order)."""
    if len(spans) == 1:
        begin, end = spans[0]
        return raw[start:begin] + raw[end:stop]
    kept = []
    for begin, end in spans:
        kept.append(raw[start:begin])
        start = end
    kept.append(raw[start:stop])
    return b"".join(kept)


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
