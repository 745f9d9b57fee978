"""agent.processgroup: a command past its deadline ends with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent import processgroup
from tests.processes import ended


def read_pids(path: Path) -> list[int]:
    return [int(n) for n in path.read_text().split()] if path.exists() else []


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_command_that_ends_in_time_gives_its_output_and_status() -> None:
    result = processgroup.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10,
                              capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_input_reaches_the_command() -> None:
    result = processgroup.run(["cat"], timeout=10, input=b"hello", stdout=subprocess.PIPE)
    assert result.stdout == b"hello"


def test_past_the_deadline_the_command_and_its_children_are_killed(tmp_path: Path) -> None:
    ids = tmp_path / "ids"
    # The child holds the output pipe open: killing the shell alone would leave it.
    script = f"sleep 60 & echo $$ $! > {ids}.new; mv {ids}.new {ids}; wait"
    started = time.monotonic()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            processgroup.run(["sh", "-c", script], timeout=2, capture_output=True)
        assert time.monotonic() - started < 10
        pids = read_pids(ids)
        assert len(pids) == 2
        assert ended(pids), "a process of the command's group lives on"
    finally:
        kill_all(read_pids(ids))


def test_what_a_finished_command_left_running_is_killed(tmp_path: Path) -> None:
    ids = tmp_path / "ids"
    script = f"sleep 60 >/dev/null 2>&1 & echo $! > {ids}"
    try:
        result = processgroup.run(["sh", "-c", script], timeout=10, capture_output=True)
        assert result.returncode == 0
        assert ended(read_pids(ids)), "the command's leftover child lives on"
    finally:
        kill_all(read_pids(ids))


class Unkillable:
    """A process stuck in the kernel: it never answers, the kill is taken, it never ends."""

    pid = -1  # never signalled: kill_group is replaced too
    args = ("sleep", "60")
    stdin = stdout = stderr = None

    def __init__(self, argv: list[str], **options: object) -> None:
        pass

    def communicate(self, data: bytes | None = None, timeout: float | None = None) -> None:
        time.sleep(timeout or 0)
        raise subprocess.TimeoutExpired("sleep", timeout or 0)


def test_a_killed_command_that_never_ends_does_not_hold_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    killed: list[int] = []
    monkeypatch.setattr(processgroup.subprocess, "Popen", Unkillable)
    monkeypatch.setattr(processgroup, "kill_group", killed.append)
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        processgroup.run(["sleep", "60"], timeout=0.3, grace=0.2)
    assert killed == [Unkillable.pid]
    assert time.monotonic() - began < 5


def test_the_command_runs_in_a_group_of_its_own() -> None:
    result = processgroup.run(["sh", "-c", "cut -d' ' -f5 /proc/$$/stat"], timeout=10,
                              capture_output=True, text=True)
    assert int(result.stdout) != os.getpgrp()
