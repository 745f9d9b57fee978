"""Reading client requests: bytes in, validated heads and body pieces out (sans-io).

`RequestReader` drives httptools' llhttp parser in its strict mode (which already refuses
the request-smuggling shapes: Content-Length with Transfer-Encoding, duplicate
Content-Length, Transfer-Encoding not ending in chunked, bad chunk sizes, whitespace
before a colon, obs-fold, NUL/CR/LF in headers) and adds the proxy's own rules: head size
limits (414/431), exactly one valid Host (400), HTTP/1.x only (505), no CONNECT (405),
only `100-continue` expectations (417), only the `chunked` transfer coding (501).

What it hands the sink is a `RequestHead` whose `lines` are already the header lines to
forward: hop-by-hop headers (and those named in Connection) removed, framing headers
removed (the proxy writes its own), forwarded headers kept only from a trusted peer.
Violations raise `Rejected(status)`; the caller answers and closes.
"""

from __future__ import annotations

from typing import Protocol

import httptools

from agent.proxy.hosts import parse_host_header

# What the reader does with a header, by lowercased name (absent: forward as is).
_HOST, _LENGTH, _CODING, _CONNECTION, _DROP, _UPGRADE, _EXPECT = range(7)
_XFF, _XFP, _XFH, _XRID, _REAL_IP, _FORWARDED = range(7, 13)
_SPECIAL = {
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"connection": _CONNECTION,
    b"keep-alive": _DROP,
    b"proxy-connection": _DROP,
    b"proxy-authorization": _DROP,
    b"te": _DROP,
    b"trailer": _DROP,
    b"upgrade": _UPGRADE,
    b"expect": _EXPECT,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _XFP,
    b"x-forwarded-host": _XFH,
    b"x-request-id": _XRID,
    b"x-real-ip": _REAL_IP,
    b"forwarded": _FORWARDED,
}
_HOST_CACHE_SIZE = 512


class Rejected(Exception):
    """The request cannot be served; answer `status` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class StopReading(Exception):
    """Raised by a sink to stop parsing the rest of the bytes (the connection is closing)."""


class RequestHead:
    """One parsed request head, ready to be forwarded.

    Fields that most requests leave at their default are class attributes, so a head
    costs only the assignments its request needs (this is on every request's path).
    """

    method = b""
    target = b""
    version = "1.1"
    host = ""  # normalised routing name
    host_header = b""  # as sent (forwarded unchanged)
    content_length: int | None = None
    chunked = False
    keep_alive = True
    expect_continue = False
    has_body = False  # chunked, or a Content-Length above 0
    upgrade: bytes | None = None  # Upgrade value when Connection lists upgrade
    # Forwarded headers; only ever set when the peer is a trusted proxy.
    forwarded_for: bytes | None = None
    forwarded_proto: bytes | None = None
    forwarded_host: bytes | None = None
    request_id: bytes | None = None
    real_ip: bytes | None = None

    def __init__(self) -> None:
        self.lines: list[bytes] = []  # b"Name: value\r\n" lines to forward

    @property
    def path(self) -> str:
        return self.target.decode("latin-1")


class RequestSink(Protocol):
    def request_head(self, head: RequestHead) -> None: ...

    def request_body(self, data: bytes) -> None: ...

    def request_end(self) -> None: ...


class RequestReader:
    """Feeds bytes to llhttp and emits heads, body pieces and ends to a sink."""

    __slots__ = (
        "_coding",
        "_connection_tokens",
        "_expect",
        "_fed_in_head",
        "_head",
        "_head_size",
        "_header_count",
        "_hosts",
        "_max_head",
        "_max_headers",
        "_max_line",
        "_parser",
        "_sink",
        "_special_seen",
        "_trusted",
        "_upgrade_value",
        "_url",
        "in_head",
    )  # fmt: skip

    def __init__(
        self,
        sink: RequestSink,
        *,
        trusted: bool,
        max_request_line: int,
        max_header_bytes: int,
        max_headers: int,
        host_cache: dict[bytes, str | None],
    ) -> None:
        self._sink = sink
        self._parser = httptools.HttpRequestParser(self)
        self._trusted = trusted
        self._max_line = max_request_line
        self._max_head = max_header_bytes
        self._max_headers = max_headers
        self._hosts = host_cache
        self._head = RequestHead()
        self._url: list[bytes] = []
        self._head_size = 0
        self._header_count = 0
        self.in_head = False  # between the first byte of a request and the end of its head
        self._fed_in_head = 0
        self._connection_tokens: list[bytes] = []
        self._coding: bytes | None = None
        self._upgrade_value: bytes | None = None
        self._expect: bytes | None = None
        self._special_seen = False  # one of the four above was set for the current request

    def feed(self, data: bytes) -> int | None:
        """Parse `data`; returns the offset where an upgraded byte stream starts, if any."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            return int(upgrade.args[0])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, (Rejected, StopReading)):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserInvalidMethodError as exc:
            raise Rejected(400, "invalid method") from exc
        except httptools.HttpParserError as exc:
            raise Rejected(400, str(exc) or "malformed request") from exc
        if self.in_head:
            # A head still incomplete: bound what llhttp may be holding for us.
            self._fed_in_head += len(data)
            if self._fed_in_head > self._max_head + 2048:
                if not self._head.target and sum(map(len, self._url)) > self._max_line:
                    raise Rejected(414, "request line too long")
                raise Rejected(431, "header block too large")
        return None

    def head_request(self) -> bool:
        """Whether the request being read (or just refused) is a HEAD: known once its
        request target began (llhttp keeps the method it parsed last)."""
        return bool(self._url) and self._parser.get_method() == b"HEAD"

    # llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head = RequestHead()
        self._url = []
        self._head_size = self._header_count = self._fed_in_head = 0
        self.in_head = True
        if self._special_seen:
            self._special_seen = False
            self._connection_tokens = []
            self._coding = self._upgrade_value = self._expect = None

    def on_url(self, fragment: bytes) -> None:
        self._url.append(fragment)
        self._head_size += len(fragment)
        if self._head_size > self._max_line:
            raise Rejected(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self._header_count += 1
        if self._head_size > self._max_head or self._header_count > self._max_headers:
            raise Rejected(431, "header block too large")
        kind = _SPECIAL.get(name.lower())
        head = self._head
        if kind is None:
            head.lines.append(name + b": " + value + b"\r\n")
        elif kind == _HOST:
            if head.host_header:
                raise Rejected(400, "more than one Host header")
            head.host_header = value or b"\x00"  # an empty Host is malformed, not absent
        elif kind == _LENGTH:
            head.content_length = int(value)  # llhttp has checked the digits
        elif kind == _CODING:
            self._coding = value
            self._special_seen = True
        elif kind == _CONNECTION:
            self._connection_tokens.extend(t.strip().lower() for t in value.split(b","))
            self._special_seen = True
        elif kind == _UPGRADE:
            self._upgrade_value = value
            self._special_seen = True
        elif kind == _EXPECT:
            self._expect = value
            self._special_seen = True
        elif kind >= _XFF and self._trusted:
            self._keep_forwarded(kind, name, value)

    def _keep_forwarded(self, kind: int, name: bytes, value: bytes) -> None:
        head = self._head
        if kind == _XFF:
            head.forwarded_for = (
                value if head.forwarded_for is None else (head.forwarded_for + b", " + value)
            )
        elif kind == _XFP:
            head.forwarded_proto = value
        elif kind == _XFH:
            head.forwarded_host = value
        elif kind == _XRID:
            head.request_id = value
        elif kind == _REAL_IP:
            head.real_ip = value
        elif kind == _FORWARDED:
            head.lines.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        self.in_head = False
        head = self._head
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1":
            if version != "1.0":
                raise Rejected(505, "only HTTP/1.0 and HTTP/1.1 are served")
            head.version = version
        head.method = method = parser.get_method()
        if method == b"CONNECT":
            raise Rejected(405, "CONNECT is not supported")
        if not parser.should_keep_alive():
            head.keep_alive = False
        fragments = self._url
        url = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        if url[:1] == b"/":
            head.target = url
        else:
            self._set_target(head, url)
        if not head.host_header:
            raise Rejected(400, "missing Host header")
        host = self._hosts.get(head.host_header, "")
        if host == "":
            host = parse_host_header(head.host_header)
            if len(self._hosts) >= _HOST_CACHE_SIZE:
                self._hosts.clear()
            self._hosts[head.host_header] = host
        if host is None:
            raise Rejected(400, "malformed Host header")
        head.host = host
        if self._coding is not None:
            coding = self._coding.lower()
            if coding.rsplit(b",", 1)[-1].strip() != b"chunked":
                raise Rejected(400, "Transfer-Encoding must end in chunked")
            if coding != b"chunked":
                raise Rejected(501, "only the chunked transfer coding is supported")
            head.chunked = head.has_body = True
        if head.content_length:
            head.has_body = True
        if self._expect is not None:
            if self._expect.lower() != b"100-continue":
                raise Rejected(417, "only 100-continue expectations are supported")
            head.expect_continue = version == "1.1"
        if self._connection_tokens:
            self._apply_connection_tokens(head)
            if head.upgrade is not None and head.has_body:
                # llhttp hands over every byte after such a head as the upgraded stream,
                # body included: it could only reach the app unframed.
                raise Rejected(400, "an Upgrade request cannot carry a body")
        self._sink.request_head(head)

    def _set_target(self, head: RequestHead, url: bytes) -> None:
        if url == b"*" and head.method == b"OPTIONS":
            head.target = url
            return
        lowered = url[:8].lower()
        if lowered.startswith((b"http://", b"https://")):
            # Absolute form: the authority replaces the Host header (RFC 9112 3.2.2).
            rest = url[url.index(b"//") + 2 :]
            slash = rest.find(b"/")
            query = rest.find(b"?")
            cut = min(i for i in (slash, query, len(rest)) if i >= 0)
            authority, path = rest[:cut], rest[cut:]
            if not authority or b"@" in authority:
                raise Rejected(400, "malformed absolute request target")
            head.host_header = authority
            head.target = path if path.startswith(b"/") else b"/" + path
            return
        raise Rejected(400, "malformed request target")

    def _apply_connection_tokens(self, head: RequestHead) -> None:
        tokens = self._connection_tokens
        if b"upgrade" in tokens and self._upgrade_value:
            head.upgrade = self._upgrade_value
        named = {t for t in tokens if t not in (b"close", b"keep-alive", b"upgrade", b"")}
        if named:
            head.lines = [
                line for line in head.lines if line.split(b":", 1)[0].lower() not in named
            ]

    def on_body(self, data: bytes) -> None:
        self._sink.request_body(data)

    def on_message_complete(self) -> None:
        self._sink.request_end()


def upstream_request_head(head: RequestHead, forwarded: bytes) -> bytes:
    """The request head sent upstream: origin-form, HTTP/1.1, our framing and forwarding.

    `forwarded` holds the X-Forwarded-*/X-Request-ID lines, already rendered.
    """
    parts = [head.method, b" ", head.target, b" HTTP/1.1\r\nHost: ", head.host_header, b"\r\n"]
    parts += head.lines
    if head.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif head.content_length is not None:
        parts.append(b"Content-Length: %d\r\n" % head.content_length)
    if head.upgrade is not None:
        parts.append(b"Connection: upgrade\r\nUpgrade: " + head.upgrade + b"\r\n")
    parts.append(forwarded)
    parts.append(b"\r\n")
    return b"".join(parts)


def peer_lines(peer_ip: str, scheme: bytes) -> bytes:
    """X-Forwarded-For, X-Real-IP and X-Forwarded-Proto for a peer that is not a trusted
    proxy: the same for every request of its connection, so rendered once."""
    ip = peer_ip.encode()
    return b"".join(
        (b"X-Forwarded-For: ", ip, b"\r\nX-Real-IP: ", ip,
         b"\r\nX-Forwarded-Proto: ", scheme, b"\r\n")
    )  # fmt: skip


def trusted_forwarded_lines(
    head: RequestHead, request_id: bytes, peer_ip: str, scheme: bytes
) -> bytes:
    """The forwarding lines for a request from a trusted proxy: the chain it sent,
    extended with its address."""
    ip = peer_ip.encode()
    chain = head.forwarded_for + b", " + ip if head.forwarded_for else ip
    return b"".join(
        (b"X-Forwarded-For: ", chain,
         b"\r\nX-Real-IP: ", head.real_ip or (head.forwarded_for or ip).split(b",")[0].strip(),
         b"\r\nX-Forwarded-Proto: ", head.forwarded_proto or scheme,
         b"\r\nX-Forwarded-Host: ", head.forwarded_host or head.host_header,
         b"\r\nX-Request-ID: ", request_id, b"\r\n")
    )  # fmt: skip
