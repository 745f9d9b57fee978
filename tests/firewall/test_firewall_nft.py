"""The nft adapter's deadlines: a command that does not answer is killed and reported,
and a killed command that does not go away does not hold its caller."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from agent.firewall import nft
from agent.firewall.errors import CommandFailed
from agent.firewall.nft import NftRunner


def test_a_command_past_its_deadline_is_killed_and_named(tmp_path) -> None:
    pid_file = tmp_path / "pid"
    runner = NftRunner(timeout=0.5)
    began = time.monotonic()
    with pytest.raises(CommandFailed, match=r"no answer within 0\.5s"):
        asyncio.run(runner.run(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]))
    assert time.monotonic() - began < 10
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)


class Unkillable:
    """A process as asyncio sees one stuck in the kernel: it never answers, the kill is
    taken, and it never ends."""

    def __init__(self) -> None:
        self.killed = False

    async def communicate(self, data: bytes | None = None) -> tuple[bytes, bytes]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def kill(self) -> None:
        self.killed = True

    async def wait(self) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_a_killed_command_that_never_ends_does_not_hold_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stuck = Unkillable()

    async def start(*argv: str, **options: object) -> Unkillable:
        return stuck

    monkeypatch.setattr(nft.asyncio, "create_subprocess_exec", start)
    monkeypatch.setattr(nft, "KILL_GRACE", 0.2)
    began = time.monotonic()
    with pytest.raises(CommandFailed, match=r"no answer within 0\.3s"):
        asyncio.run(NftRunner(timeout=0.3).run(["nft", "list", "ruleset"]))
    assert stuck.killed
    assert time.monotonic() - began < 5
