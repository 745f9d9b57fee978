"""Who answers on an address's HTTP or HTTPS port (I/O only, no judging): `berth doctor`
connects, sends the proxy's probe (agent.proxy.probe) with a nonce of its own, and tells
this agent's proxy (it gives the answer the control API said it would, for that nonce)
from another server (anything else that answers) and from nothing at all (refused,
timed out, unroutable). Each address gets its own nonce: an answer taken from another
probe does not match.

Over HTTPS the domain goes as the TLS server name and the certificate is not verified:
the answer, not the certificate, says who answered. Each probe has a deadline; several
run at once."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from agent.proxy.probe import PREFIX, Challenge

TIMEOUT = 5.0
_MAX_ANSWER = 64 * 1024
PARALLEL = 16  # probes at once

# "something": a TCP connection was accepted, nothing more was asked (HTTPS on an address
# for which the proxy has no certificate to show: its handshake would fail either way).
Who = Literal["this agent", "another server", "nothing", "something"]


@dataclass(frozen=True)
class Target:
    """One probe: `address`:`port`, with `host` as Host (and server name, over TLS; ""
    over TLS: connect only). `domain`: the app domain it is for, None for this server's
    own address."""

    address: str
    port: int
    host: str
    tls: bool = False
    domain: str | None = None


@dataclass(frozen=True)
class Answered:
    who: Who
    detail: str = ""  # for another server, what it answered; for nothing, the error


def probe_all(targets: Sequence[Target], challenges: Sequence[Challenge]) -> list[Answered]:
    """Who answered each target, in order (each with its own challenge)."""
    if len(challenges) < len(targets):
        raise ValueError(f"{len(targets)} addresses to probe, {len(challenges)} nonces")
    if not targets:
        return []
    with ThreadPoolExecutor(min(PARALLEL, len(targets))) as pool:
        return list(pool.map(probe, targets, challenges))


def probe(target: Target, challenge: Challenge, timeout: float = TIMEOUT) -> Answered:
    deadline = time.monotonic() + timeout
    request = (f"GET {PREFIX.decode()}{challenge.nonce} HTTP/1.1\r\nHost: {_host_header(target.host)}"
               "\r\nUser-Agent: berth-doctor\r\nConnection: close\r\n\r\n").encode()
    try:
        raw = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        return Answered("nothing", _why(exc))
    if target.tls and not target.host:
        raw.close()
        return Answered("something", "no certificate yet to prove whose it is")
    try:
        conn = _tls().wrap_socket(raw, server_hostname=target.host) if target.tls else raw
    except OSError as exc:  # ssl.SSLError included
        raw.close()
        return Answered("another server", f"its TLS handshake failed: {_why(exc)}")
    with conn:  # the TLS socket took the connection over from `raw`
        try:
            conn.sendall(request)
            answer = _read(conn, deadline)
        except OSError as exc:  # accepted, then reset: something holds the port
            return Answered("another server", f"the connection broke: {_why(exc)}")
    return _judge(answer, challenge.answer, timeout)


def _judge(answer: bytes, expected: str, timeout: float) -> Answered:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if not answer:
        return Answered("another server", f"it accepted the connection but sent no answer "
                        f"within {timeout:g} s")
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return Answered("another server", "it did not answer HTTP")
    if parts[1] == "200" and body.strip() == expected.encode():
        return Answered("this agent")
    return Answered("another server", f"it answered {' '.join(parts[1:])[:60]}")


def _read(conn: socket.socket, deadline: float) -> bytes:
    data = b""
    while len(data) < _MAX_ANSWER:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(_MAX_ANSWER - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
