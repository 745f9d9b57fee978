"""Control API: an app's logs (removed instances' last lines, then the running ones')."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, number, services
from agent.api.streaming import MEDIA_TYPE, event
from agent.deploy.runtime import LogLine

MAX_LINES = 100_000


async def logs(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    agent.apps.get(name)
    follow = request.query_params.get("follow") == "1"
    lines = number(request.query_params.get("lines", "100"), "number of lines", 0, MAX_LINES)
    process = request.query_params.get("process") or None
    containers = [c for c in await agent.runtime.containers(name) if c.role == "process"]
    if process is not None:
        containers = [c for c in containers if c.instance and c.instance.process == process]
    live = agent.releases.live(name)
    if live is not None:
        # Old instances still draining would repeat lines; show the live release's.
        containers = [c for c in containers if c.release == live.number] or containers

    # What removed instances (earlier releases, restarts, crashes) last said comes
    # first: all of it is older than the running instances' lines, save the last
    # moments of an old instance still draining (shown in time order when not following).
    earlier = (await asyncio.to_thread(agent.history.tail, name, max(0, lines), process)
               if agent.history else [])

    async def ordered() -> AsyncIterator[LogLine]:
        current = agent.runtime.logs(containers, follow=follow, tail=max(0, lines))
        if follow:
            for line in sorted(earlier, key=lambda line: line.time):
                yield line
            async for line in current:
                yield line
            return
        merged = sorted(earlier + [line async for line in current], key=lambda line: line.time)
        for line in merged[-lines:] if lines > 0 else []:
            yield line

    async def body() -> AsyncIterator[bytes]:
        async for line in ordered():
            yield event(time=line.time, source=line.source, release=line.release,
                        text=line.text)

    return StreamingResponse(body(), media_type=MEDIA_TYPE)


def app_routes() -> list[BaseRoute]:
    return [Route("/logs", logs, methods=["GET"])]
