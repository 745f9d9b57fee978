"""The nft adapter's deadlines: a command that does not answer is killed and reported
(that a killed command which does not go away does not hold its caller is
agent.processgroup's, tested there)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

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


def test_a_command_running_when_its_loop_shuts_down_does_not_hang_the_shutdown() -> None:
    """The agent stopping (its loop cancelling every task) while a command is starting:
    asyncio's own subprocess start, cancelled then, waits forever on Python 3.11.2. The
    loop's shutdown runs in a thread here, so a hang fails the test rather than the run."""
    runner = NftRunner(timeout=0.5)

    async def stop_while_starting() -> None:
        asyncio.get_running_loop().create_task(runner.run(["sleep", "30"]))
        await asyncio.sleep(0)  # the command is being started when the loop shuts down

    def shut_down() -> None:
        asyncio.run(stop_while_starting())

    for _ in range(3):
        thread = threading.Thread(target=shut_down, daemon=True)
        began = time.monotonic()
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "the loop's shutdown hung on a command being started"
        assert time.monotonic() - began < 20
