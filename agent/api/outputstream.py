"""Streaming a one-off's output (`berth run`) to the client, every byte, at its pace.

The answer is NDJSON like every other operation's: `{"out": BASE64}` and `{"err":
BASE64}` events as the container writes, then `{"result": {"exit_code": N}}` or
`{"error": ..., "status": ...}`. Between the container and the client sits a queue of a
few pieces: when the client reads slowly, the queue fills, the engine's stream is not
read, and the command blocks on its writes; nothing is dropped and the agent's memory
does not grow with the output. A client that goes away stops the command.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from agent.api.streaming import MEDIA_TYPE, event
from agent.deploy.runtime import OutputSink
from agent.deploy.streams import STDERR
from agent.errors import BerthError

log = logging.getLogger(__name__)

QUEUED_PIECES = 4
_END = b""

Run = Callable[[OutputSink], Awaitable[int]]


def stream_output(request: Request, run: Run) -> StreamingResponse:
    """Start `run` with a sink feeding the answer; cancel it if the client goes away."""
    tasks: set[asyncio.Task[Any]] = request.app.state.background_tasks

    async def body() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUED_PIECES)
        task = asyncio.create_task(_run_into(queue, run))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        try:
            while (item := await queue.get()) is not _END:
                yield item
        finally:
            if not task.done():
                task.cancel()

    return StreamingResponse(body(), media_type=MEDIA_TYPE)


async def _run_into(queue: asyncio.Queue[bytes], run: Run) -> None:
    async def sink(stream: int, data: bytes) -> None:
        name = "err" if stream == STDERR else "out"
        await queue.put(event(**{name: base64.b64encode(data).decode("ascii")}))

    try:
        code = await run(sink)
        await queue.put(event(result={"exit_code": code}))
    except BerthError as exc:
        await queue.put(event(error=str(exc).splitlines()[0], status=exc.status))
    except Exception as exc:  # a task boundary: the client hears of it, the log keeps it
        log.error("one-off crashed", exc_info=exc)
        await queue.put(event(error=f"internal error: {type(exc).__name__}: {exc}",
                              status=500))
    finally:
        await queue.put(_END)
