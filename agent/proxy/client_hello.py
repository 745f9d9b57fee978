"""The server name (SNI) in a TLS ClientHello, read from the first bytes of a connection.

Pure. The HTTPS listener peeks at a new connection's first bytes and asks this module
which name the client wants, before any TLS library sees them: a name the certificate
store does not hold is answered with a TLS alert record written by the proxy itself
(asyncio's TLS layer drops the alert OpenSSL would send, leaving the client a bare reset).
"""

from __future__ import annotations

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
MAX_HELLO = 16 * 1024 + 5 * 4  # a ClientHello larger than this is refused

# Fatal alert records (TLS 1.2 record version, understood by every TLS client).
ALERT_UNRECOGNIZED_NAME = bytes((21, 3, 3, 0, 2, 2, 112))
ALERT_HANDSHAKE_FAILURE = bytes((21, 3, 3, 0, 2, 2, 40))


class NotTLS(Exception):
    """The bytes are not a TLS ClientHello."""


def server_name(data: bytes) -> str | None | bool:
    """The SNI host name; None when the hello has none; False while more bytes are needed.

    Raises NotTLS for anything that is not a well-formed ClientHello.
    """
    message = _handshake_message(data)
    if message is None:
        return False
    if len(message) < 4 or message[0] != _CLIENT_HELLO:
        raise NotTLS("not a ClientHello")
    body = message[4:]
    pos = 2 + 32  # client_version, random
    pos = _skip(body, pos, 1)  # session id
    pos = _skip(body, pos, 2)  # cipher suites
    pos = _skip(body, pos, 1)  # compression methods
    if pos == len(body):
        return None  # no extensions at all
    end = pos + 2 + _number(body, pos, 2)
    if end > len(body):
        raise NotTLS("extensions overrun the hello")
    pos += 2
    while pos + 4 <= end:
        kind = _number(body, pos, 2)
        size = _number(body, pos + 2, 2)
        start = pos + 4
        if start + size > end:
            raise NotTLS("extension overruns the hello")
        if kind == _SERVER_NAME:
            return _host_name(body[start : start + size])
        pos = start + size
    return None


def _handshake_message(data: bytes) -> bytes | None:
    """The handshake message carried by the leading records, once complete."""
    payload = b""
    pos = 0
    while True:
        if len(data) < pos + 5:
            return None
        if data[pos] != _HANDSHAKE or data[pos + 1] != 3:
            raise NotTLS("not a TLS handshake record")
        size = _number(data, pos + 3, 2)
        if size == 0 or size > 16384 + 2048:
            raise NotTLS("bad record length")
        if len(data) < pos + 5 + size:
            return None
        payload += data[pos + 5 : pos + 5 + size]
        pos += 5 + size
        if len(payload) >= 4:
            wanted = 4 + _number(payload, 1, 3)
            if wanted > MAX_HELLO:
                raise NotTLS("ClientHello too large")
            if len(payload) >= wanted:
                return payload[:wanted]


def _host_name(extension: bytes) -> str | None:
    pos = 2  # server_name_list length
    while pos + 3 <= len(extension):
        kind = extension[pos]
        size = _number(extension, pos + 1, 2)
        name = extension[pos + 3 : pos + 3 + size]
        if len(name) != size:
            raise NotTLS("server name overruns its extension")
        if kind == 0:
            try:
                return name.decode("ascii").lower().rstrip(".")
            except UnicodeDecodeError as exc:
                raise NotTLS("server name is not ASCII") from exc
        pos += 3 + size
    return None


def _number(data: bytes, pos: int, width: int) -> int:
    if pos + width > len(data):
        raise NotTLS("truncated hello")
    return int.from_bytes(data[pos : pos + width], "big")


def _skip(data: bytes, pos: int, width: int) -> int:
    end = pos + width + _number(data, pos, width)
    if end > len(data):
        raise NotTLS("truncated hello")
    return end
