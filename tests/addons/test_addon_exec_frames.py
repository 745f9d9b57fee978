"""Reading an exec's multiplexed output with a deadline, over a real socket pair: stdout
and stderr apart, stdout streamed to a sink, and a silent or endless stream given up at
its deadline instead of waited on forever."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time

import pytest

from agent.addons.deadlines import bounded, probe, victims
from agent.addons.engine import _read_frames


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def test_frames_are_split_into_stdout_and_stderr() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(_frame(1, b"dump ") + _frame(2, b"a warning") + _frame(1, b"bytes"))
        theirs.shutdown(socket.SHUT_WR)
        out, err = _read_frames(ours, None, time.monotonic() + 5)
    assert (bytes(out), bytes(err)) == (b"dump bytes", b"a warning")


def test_stdout_goes_to_the_sink_when_there_is_one() -> None:
    sink = io.BytesIO()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(_frame(1, b"x" * 100_000))
        theirs.shutdown(socket.SHUT_WR)
        out, _ = _read_frames(ours, sink, time.monotonic() + 5)
    assert sink.getvalue() == b"x" * 100_000 and out == b""


def test_a_silent_stream_is_given_up_at_its_deadline() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _read_frames(ours, None, started + 0.3)
        assert 0.25 < time.monotonic() - started < 3


def test_a_stream_that_never_ends_is_given_up_at_its_deadline() -> None:
    """Output that keeps coming does not keep the wait alive past the deadline."""
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            try:
                theirs.sendall(_frame(1, b"."))
            except OSError:
                return
            time.sleep(0.01)
    writer = threading.Thread(target=chatter, daemon=True)
    writer.start()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _read_frames(ours, None, started + 0.5)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        ours.close()
        writer.join(timeout=5)
        theirs.close()


def test_the_command_runs_under_the_containers_timeout_in_whole_seconds() -> None:
    assert bounded(["pg_dump", "-Fc"], 2.5) == [
        "timeout", "--foreground", "-s", "KILL", "3", "pg_dump", "-Fc"]
    assert bounded(["psql"], 0.2)[4] == "1"


def test_busyboxs_timeout_is_called_without_foreground_which_it_lacks() -> None:
    assert bounded(["redis-cli", "PING"], 2.5, "busybox") == [
        "timeout", "-s", "KILL", "3", "redis-cli", "PING"]
    assert probe("busybox")[-1] == "true" and "--foreground" in probe("gnu")


def test_from_the_host_the_command_alone_is_killed_never_gnus_timeout() -> None:
    # GNU's timeout is the exec's process and the command its child: the child goes.
    assert victims("gnu", 100, [101]) == [101]
    # busybox's timeout became the command: the exec's own process goes.
    assert victims("busybox", 100, []) == [100]
    assert victims("busybox", 0, []) == []
