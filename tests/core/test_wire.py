"""The CLI's HTTP/1.1 client over a real unix socket, against a server that answers
exactly the bytes each test gives it (uvicorn itself is met in the end-to-end tests)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import wire
from agent.cli.client import ControlClient, relay
from agent.errors import AgentUnavailable, BerthError


class Server:
    """Accepts one connection, records the request (up to the end of its body when the
    request says how long it is, else what came before the answer), then answers."""

    def __init__(self, path: Path, answer: list[bytes], *, read_all: bool = True) -> None:
        self.path, self.answer, self.read_all = path, answer, read_all
        self.received = b""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.received:
                self.received += conn.recv(65536)
            if self.read_all:
                while not self._complete():
                    piece = conn.recv(65536)
                    if not piece:
                        break
                    self.received += piece
            for piece in self.answer:
                conn.sendall(piece)
        self.listener.close()

    def _complete(self) -> bool:
        head, _, body = self.received.partition(b"\r\n\r\n")
        if b"Transfer-Encoding: chunked" in head:
            return body.endswith(b"0\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return len(body) >= int(line.split(b":")[1])
        return True


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


def test_a_json_call_sends_length_framed_json_and_reads_a_length_framed_answer(sock) -> None:
    server = Server(sock, [b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\n\r\n{\"ok\": true}"])
    answer = ControlClient(sock).call("POST", "/apps", payload={"name": "shop"})
    server.thread.join(5)
    assert answer == {"ok": True}
    head, _, body = server.received.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /apps HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 16" in head and b"\r\nConnection: close" in head
    assert body == b'{"name": "shop"}'


def test_a_streamed_body_goes_chunked_and_lines_arrive_across_chunks(sock) -> None:
    events = b'{"line": "-----> Building"}\n{"line": "caf\xc3\xa9"}\n{"result": 1}\n'
    chunks = [events[:10], events[10:33], events[33:]]
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    server = Server(sock, [answer])
    said: list[str] = []
    stream = ControlClient(sock).stream("POST", "/apps/shop/deploys", query={"sha": "ab"},
                                        body=iter([b"tar", b"", b"ball"]))
    assert relay(stream, said.append) == 0
    server.thread.join(5)
    assert said == ["-----> Building", "café"]
    head, _, body = server.received.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /apps/shop/deploys?sha=ab HTTP/1.1\r\n")
    assert body == b"3\r\ntar\r\n4\r\nball\r\n0\r\n\r\n"  # the empty piece is not an end


def test_an_answer_framed_by_the_end_of_the_connection(sock) -> None:
    Server(sock, [b"HTTP/1.1 200 OK\r\n\r\n", b'{"line": "a"}\n{"li', b'ne": "b"}'])
    answer = wire.request(str(sock), "GET", "/x")
    assert list(answer.lines()) == [b'{"line": "a"}', b'{"line": "b"}']
    answer.close()


def test_a_refusal_before_the_body_is_read_is_still_the_answer(sock) -> None:
    refusal = b'{"error": "the pushed tree is larger than 1 MiB"}'
    Server(sock, [b"HTTP/1.1 413 Too Large\r\ncontent-length: %d\r\n\r\n%s" % (
        len(refusal), refusal)], read_all=False)

    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    with pytest.raises(BerthError, match="larger than 1 MiB"):
        list(ControlClient(sock).stream("POST", "/apps/shop/deploys", body=endless()))


def test_an_error_event_and_an_early_end_are_errors(sock) -> None:
    Server(sock, [b'HTTP/1.1 200 OK\r\n\r\n{"line": "x"}\n{"error": "health check failed"}\n'])
    with pytest.raises(BerthError, match="^health check failed$"):
        relay(ControlClient(sock).stream("POST", "/a"), lambda line: None)
    (sock.parent / "second").mkdir()
    second = sock.parent / "second" / "control.sock"
    Server(second, [b'HTTP/1.1 200 OK\r\n\r\n{"line": "x"}\n'])
    with pytest.raises(BerthError, match="ended the answer early"):
        relay(ControlClient(second).stream("POST", "/a"), lambda line: None)


@pytest.mark.parametrize("answer", [
    b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nab\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
])
def test_what_is_not_http_is_one_error_line(sock, answer: bytes) -> None:
    Server(sock, [answer])
    with pytest.raises(AgentUnavailable) as caught:
        ControlClient(sock).call("GET", "/apps")
    assert str(caught.value).startswith(("cannot talk to the agent", "lost the agent"))
    assert "\n" not in str(caught.value)


def test_no_agent_is_one_error_line(sock) -> None:
    with pytest.raises(AgentUnavailable, match="the agent is not running"):
        ControlClient(sock).call("GET", "/apps")
