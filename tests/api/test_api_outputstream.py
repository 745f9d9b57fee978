"""A one-off's output on its way to the client: bounded, in order, then the status."""

from __future__ import annotations

import asyncio
import base64
import json

from agent.api.outputstream import _END, QUEUED_PIECES, _run_into
from agent.errors import BerthError


async def test_a_client_that_does_not_read_holds_the_command_back() -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUED_PIECES)
    written = []

    async def run(sink) -> int:
        for n in range(100):
            await sink(1 if n % 3 else 2, b"%d\n" % n)
            written.append(n)
        return 7

    task = asyncio.create_task(_run_into(queue, run))
    await asyncio.sleep(0.2)
    assert not task.done() and len(written) <= QUEUED_PIECES + 1  # blocked, not buffered
    events = []
    while (item := await queue.get()) is not _END:
        events.append(json.loads(item))
    await task
    pieces = [(next(iter(e)), base64.b64decode(next(iter(e.values())))) for e in events[:-1]]
    assert pieces == [("err" if n % 3 == 0 else "out", b"%d\n" % n) for n in range(100)]
    assert events[-1] == {"result": {"exit_code": 7}}


async def test_a_refusal_ends_the_stream_with_its_one_line() -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUED_PIECES)

    async def run(sink) -> int:
        raise BerthError("shop has no live release\nmore")

    await _run_into(queue, run)
    assert json.loads(await queue.get()) == {"error": "shop has no live release", "status": 400}
    assert await queue.get() is _END
