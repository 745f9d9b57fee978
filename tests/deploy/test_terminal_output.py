"""A terminal's output behind a slow user: the agent queues a few pieces and leaves the
rest in the socket (real socket pair, a writer far faster than the reader)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

from agent.deploy.terminal_output import PIECE, QUEUED_PIECES, TerminalOutput

SENT = 16 * 1024 * 1024  # far beyond the socket's buffers and the queue's bound


def test_a_fast_writer_behind_a_slow_reader_waits_in_the_socket() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        written = threading.Event()

        def write() -> None:
            try:
                theirs.sendall(b"x" * SENT)
                written.set()
            except OSError:
                pass

        writer = threading.Thread(target=write, daemon=True)
        output = TerminalOutput(ours, "test-output")
        output.start()
        writer.start()
        deadline = time.monotonic() + 10
        while output.queue.qsize() < QUEUED_PIECES and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # time for an unbounded reader to take everything
        assert output.queue.qsize() == QUEUED_PIECES
        assert not written.is_set()  # the rest waits in the socket, not in the agent
        received = 0
        while received < SENT:
            piece = await asyncio.wait_for(output.get(), 10)
            assert piece is not None and len(piece) <= PIECE
            received += len(piece)
        assert written.wait(10)
        theirs.close()
        assert await asyncio.wait_for(output.get(), 10) is None
        ours.close()

    asyncio.run(scenario())


def _reading(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


def test_a_stopped_reader_lets_go_of_a_full_queue() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        output = TerminalOutput(ours, "stopped-output")
        output.start()
        deadline = time.monotonic() + 10
        while output.queue.qsize() < QUEUED_PIECES and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                theirs.send(b"y" * PIECE)
            await asyncio.sleep(0.01)
        assert output.queue.qsize() == QUEUED_PIECES
        with contextlib.suppress(BlockingIOError):
            while True:  # more than the reader could hand over: it waits on the queue
                theirs.send(b"y" * PIECE)
        await asyncio.sleep(0.2)
        assert _reading("stopped-output")
        output.stop()
        while _reading("stopped-output"):
            assert time.monotonic() < deadline + 5, "the reader never let go"
            await asyncio.sleep(0.05)
        ours.close()
        theirs.close()

    asyncio.run(scenario())
