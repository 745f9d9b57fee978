"""A terminal's output read from its socket, with backpressure, for the relays of
attached one-offs (agent.deploy.docker_oneoff) and add-on clients (agent.addons.terminal).

A thread reads the socket into a queue of at most QUEUED_PIECES pieces and reads the next
piece only once the queue took the last one: behind a slow user the container's output
waits in the socket (and the container blocks writing), never in the agent's memory.
`stop()` releases the thread even while the queue is full and nobody reads it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading

from agent.deploy.runtime import Terminal

QUEUED_PIECES = 4
PIECE = 65536
_POLL = 0.5  # how often a thread waiting on a full queue looks whether it was stopped


class TerminalOutput:
    """The pieces `sock` yields, in order, then None at its end."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUED_PIECES)
        self._sock = sock
        self._name = name
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start reading (from inside the running loop that will consume)."""
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name=self._name, daemon=True).start()

    def stop(self) -> None:
        """Let the thread go: it hands over nothing more."""
        self._stopped.set()

    async def get(self) -> bytes | None:
        """The next piece, or None once the output ended."""
        return await self.queue.get()

    async def copy_to(self, terminal: Terminal) -> None:
        """Every piece sent to the user's terminal, until the output ends."""
        while (data := await self.get()) is not None:
            await terminal.send(data)

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while not self._stopped.is_set() and (data := self._sock.recv(PIECE)):
                if not self._hand_over(data):
                    return
        self._hand_over(None)

    def _hand_over(self, item: bytes | None) -> bool:
        """`item` queued, waiting while the queue is full; False once stopped (or the
        loop is gone) before it was."""
        assert self._loop is not None
        try:
            queued = asyncio.run_coroutine_threadsafe(self.queue.put(item), self._loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                queued.result(timeout=_POLL)
                return True
            except concurrent.futures.TimeoutError:
                if self._stopped.is_set():
                    queued.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False
