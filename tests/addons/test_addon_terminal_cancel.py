"""An add-on client session cancelled under the agent (a restart in place, shutdown):
the client is killed in the add-on, and the cancellation goes on (a real socket pair
stands for the engine's exec stream)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, cast

import pytest

from agent.addons.engine import AddonEngine
from agent.addons.model import Addon
from agent.addons.terminal import run_client


class RecordingEngine:
    """The engine's exec calls, recorded: a client that never exits by itself."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.killed = threading.Event()
        self.kills: list[tuple[str, str]] = []
        self.ours, self.theirs = socket.socketpair()

    def start_terminal_exec(self, name: str, argv: list[str], **_: Any) -> tuple[str, socket.socket]:
        self.started.set()
        return "e" * 64, self.ours

    def resize_exec(self, exec_id: str, size: tuple[int, int]) -> None:
        pass

    def exec_status(self, exec_id: str) -> int | None:
        return None

    def kill_exec(self, exec_id: str, name: str) -> None:
        self.kills.append((exec_id, name))
        self.theirs.close()  # as the engine's stream ends with the client
        self.killed.set()


class QuietTerminal:
    """A user who is there and types nothing."""

    async def receive(self) -> bytes | tuple[int, int] | None:
        await asyncio.Event().wait()
        return None

    async def send(self, data: bytes) -> None:
        pass


def test_a_cancelled_session_kills_the_client_in_the_addon() -> None:
    engine = RecordingEngine()
    addon = Addon(app="shop", name="db", kind="postgres", version="16", image="postgres:16",
                  variable="DATABASE_URL", password="secret", created_at=0.0)

    async def scenario() -> None:
        session = asyncio.ensure_future(run_client(
            cast(AddonEngine, engine), addon, (80, 24), "xterm", 600.0, QuietTerminal()))
        assert await asyncio.to_thread(engine.started.wait, 10)
        await asyncio.sleep(0.1)
        session.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(session, 10)

    asyncio.run(scenario())
    assert engine.killed.wait(10)
    assert engine.kills == [("e" * 64, addon.container)]
