"""Fuzzing a running proxy (its own process) with random and mutated requests.

Every connection must end with well-formed HTTP responses or a plain close, never a hang;
the proxy must keep serving and its memory must stay bounded.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
_STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5][0-9][0-9] [^\r\n]*\r\n")

TEMPLATES = [
    b"GET /hello HTTP/1.1\r\nHost: app.test\r\n\r\n",
    b"GET /headers?a=1 HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HEAD /hello HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxyz",
    b"GET /hello HTTP/1.1\r\nHost: app.test\r\n\r\nGET /headers HTTP/1.1\r\nHost: app.test\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
]
SPECIALS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b":",
    b" ",
    b"\t",
    b",",
    b"chunked",
    b"0",
    b"-1",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"\xff",
    b"HTTP/1.1",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        action = draw(st.integers(min_value=0, max_value=3))
        at = draw(st.integers(min_value=0, max_value=len(data)))
        if action == 0 and data:
            data[min(at, len(data) - 1)] = draw(st.integers(min_value=0, max_value=255))
        elif action == 1:
            data[at:at] = draw(st.sampled_from(SPECIALS))
        elif action == 2:
            del data[at : at + draw(st.integers(min_value=1, max_value=8))]
        else:
            data[at:at] = draw(st.binary(max_size=16))
    return bytes(data)


REQUESTS = st.one_of(mutated(), st.binary(max_size=400), st.sampled_from(TEMPLATES))


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(?:http=|listening )(\d+)", line)
    assert match, line
    return process, int(match.group(1))


@pytest.fixture(scope="module")
def proxy_process() -> Iterator[tuple[int, int]]:
    backend, backend_port = _start([sys.executable, "-m", "tests.proxy.backend", "fuzz"])
    proxy, port = _start(
        [sys.executable, "-m", "agent.proxy", "--listen", "127.0.0.1", "--http-port", "0",
         "--no-access-log", "--route", f"app.test=127.0.0.1:{backend_port}"]
    )  # fmt: skip
    try:
        yield proxy.pid, port
    finally:
        for process in (proxy, backend):
            process.terminate()
            process.wait(10)
            assert process.stdout is not None
            process.stdout.close()


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the proxy may answer and close before reading everything
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _check(received: bytes) -> None:
    if not received:
        return  # a plain close
    assert _STATUS_LINE.match(received), received[:200]
    assert b"\r\n\r\n" in received, received[:200]


@pytest.mark.slow
def test_fuzzed_requests_get_well_formed_answers_or_a_close(proxy_process: tuple[int, int]) -> None:
    pid, port = proxy_process
    for _ in range(50):  # warm up before measuring memory
        _check(_exchange(port, TEMPLATES[0]))
    baseline = _rss_kib(pid)

    @settings(
        max_examples=1500, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(REQUESTS)
    def throw(data: bytes) -> None:
        _check(_exchange(port, data))

    throw()
    answer = _exchange(port, b"GET /hello HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello from fuzz")
    assert _rss_kib(pid) - baseline < 30 * 1024
