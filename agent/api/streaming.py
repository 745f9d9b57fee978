"""Running a long operation and streaming its output as NDJSON events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from agent.deploy.output import DeployOutput
from agent.errors import BerthError

log = logging.getLogger(__name__)

Operation = Callable[[DeployOutput], Coroutine[Any, Any, Any]]
MEDIA_TYPE = "application/x-ndjson"


def event(**fields: Any) -> bytes:
    return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")


def stream_operation(
    request: Request, operation: Operation, *,
    may_cancel: Callable[[], bool] = lambda: False,
) -> StreamingResponse:
    """Run `operation` as a task and stream its lines, then its result or error.

    When the client goes away, the task is cancelled if `may_cancel()` says so (a deploy
    before its swap); otherwise it runs to its end in the background. An operation that
    settles early (`DeployOutput.settle`) ends the stream there and finishes unwatched.
    """
    tasks: set[asyncio.Task[Any]] = request.app.state.background_tasks

    async def body() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[str | _Settled | None] = asyncio.Queue()
        out = DeployOutput(queue.put_nowait, on_settled=lambda r: queue.put_nowait(_Settled(r)))
        task = asyncio.create_task(operation(out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, _Settled):
                    yield event(result=item.result)
                    return
                yield event(line=item)
            yield _outcome(task)
        finally:
            if not task.done() and may_cancel():
                task.cancel()

    return StreamingResponse(body(), media_type=MEDIA_TYPE)


class _Settled:
    """The operation's result, delivered before its cleanup ends (DeployOutput.settle)."""

    def __init__(self, result: Any) -> None:
        self.result = result


def _outcome(task: asyncio.Task[Any]) -> bytes:
    if task.cancelled():
        return event(error="cancelled", status=499)
    exc = task.exception()
    if exc is None:
        return event(result=task.result())
    if isinstance(exc, BerthError):
        return event(error=str(exc).splitlines()[0], status=exc.status)
    log.error("operation crashed", exc_info=exc)
    return event(error=f"internal error: {type(exc).__name__}: {exc}", status=500)
