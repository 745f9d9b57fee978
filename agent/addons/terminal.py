"""An add-on's own client with a user's terminal attached, run by the agent.

Over `ssh -t`, `addons:psql` and `addons:redis-cli` run as the berth user, which may not
use Docker, so the agent runs the client for them: `docker exec` with a terminal of the
client the server uses from its own terminal (agent.addons.containers), under the
container's `timeout` like every command in an add-on (agent.addons.engine.bounded),
relayed to a Terminal (agent.deploy.runtime.Terminal: a WebSocket, agent.api.addons):
keystrokes and sizes in, the client's terminal out. The session ends when the client
exits (its status), when the user goes away (the client is killed: 129, as a hang-up;
the engine would leave it running), at the deadline (killed: -1) or when the agent
cancels the session (restart, shutdown: killed, the cancellation goes on).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading

from agent.addons.containers import client_in_container
from agent.addons.engine import EXEC_GRACE, KILLED_STATUSES, AddonEngine
from agent.addons.model import Addon
from agent.deploy.runtime import Terminal
from agent.deploy.terminal_output import TerminalOutput

HUNG_UP = 129  # 128 + SIGHUP
TIMED_OUT = -1
_STATUS_WAIT = 5.0  # after the client's output ends, for the engine to record its status
_TERM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def term_name(value: str) -> str:
    """The user's TERM for the client (its line editing and colours), or xterm."""
    return value if _TERM.fullmatch(value) else "xterm"


async def run_client(engine: AddonEngine, addon: Addon, size: tuple[int, int], term: str,
                     timeout: float, terminal: Terminal) -> int:
    """The add-on's client attached to `terminal` until it ends; its exit status."""
    argv, user = client_in_container(addon.kind, addon.user)
    exec_id, sock = await asyncio.to_thread(
        engine.start_terminal_exec, addon.container, argv, user=user,
        env={"TERM": term_name(term)}, size=size, timeout=timeout)
    started = asyncio.get_running_loop().time()
    try:
        status = await _relay(engine, exec_id, sock, timeout + EXEC_GRACE, terminal)
        if status is None:
            status = await _exit_status(engine, exec_id)
            late = asyncio.get_running_loop().time() - started >= timeout
            return TIMED_OUT if late and status in KILLED_STATUSES else status
        await asyncio.to_thread(engine.kill_exec, exec_id, addon.container)
        return status
    except asyncio.CancelledError:
        _kill_behind(engine, exec_id, addon.container)
        raise
    finally:
        sock.close()


def _kill_behind(engine: AddonEngine, exec_id: str, container: str) -> None:
    """The client killed in a thread of its own, run to its end even while the agent
    shuts down (not a daemon; the engine's calls have the client's timeout): a session
    cancelled under it would otherwise hold the add-on (a postgres backend) until its
    deadline."""
    threading.Thread(target=engine.kill_exec, args=(exec_id, container),
                     name=f"addon-client-kill-{exec_id[:12]}").start()


async def _relay(engine: AddonEngine, exec_id: str, sock: socket.socket, timeout: float,
                 terminal: Terminal) -> int | None:
    """Keystrokes in, output out; None once the client's output ended (it exited),
    HUNG_UP when the user went away first, TIMED_OUT at the deadline."""
    output = TerminalOutput(sock, f"addon-client-{exec_id[:12]}")

    async def take_input() -> None:
        while (item := await terminal.receive()) is not None:
            if isinstance(item, bytes):
                with contextlib.suppress(OSError):  # the client is exiting
                    await asyncio.to_thread(sock.sendall, item)
            else:
                await asyncio.to_thread(engine.resize_exec, exec_id, item)

    output.start()
    printed = asyncio.ensure_future(output.copy_to(terminal))
    typed = asyncio.ensure_future(take_input())
    try:
        done, _ = await asyncio.wait({printed, typed}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if printed in done:
            return None if printed.exception() is None else HUNG_UP
        return HUNG_UP if typed in done else TIMED_OUT
    finally:
        output.stop()
        for task in (printed, typed):
            task.cancel()
        await asyncio.gather(printed, typed, return_exceptions=True)


async def _exit_status(engine: AddonEngine, exec_id: str) -> int:
    """The exited client's status (the engine records it a moment after its output
    ends; HUNG_UP if it never does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STATUS_WAIT
    while (status := await asyncio.to_thread(engine.exec_status, exec_id)) is None:
        if loop.time() >= deadline:
            return HUNG_UP
        await asyncio.sleep(0.05)
    return status
