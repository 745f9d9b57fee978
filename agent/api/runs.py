"""Control API: one-off commands (`berth run`), streamed or attached to a terminal."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from agent.api.outputstream import stream_output
from agent.api.params import app_param, json_body, services
from agent.api.terminals import serve_terminal
from agent.deploy.runtime import OutputSink, Terminal
from agent.errors import BerthError


async def run_one_off(request: Request) -> Response:
    """`berth run`: a command in a one-off container of the live release; its output
    streams back byte for byte (agent.api.outputstream), then its exit status. Hanging
    up stops it."""
    agent = services(request)
    name = app_param(request)
    agent.apps.get(name)
    command = (await json_body(request)).get("command")
    if not isinstance(command, str):
        raise BerthError("command must be a string")

    async def run(sink: OutputSink) -> int:
        return await agent.deployer.one_offs.stream(name, command, sink)

    return stream_output(request, run)


async def run_with_terminal(websocket: WebSocket) -> None:
    """`berth run` from a terminal (agent.api.terminals): the one-off container's
    terminal; the container is removed when the command exits or the client goes away."""
    agent = services(websocket)
    command = websocket.query_params.get("command", "")

    async def session(terminal: Terminal, size: tuple[int, int]) -> int:
        return await agent.deployer.run_attached(app_param(websocket), command, size, terminal)

    await serve_terminal(websocket, session)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/run", run_one_off, methods=["POST"]),
        WebSocketRoute("/run/attach", run_with_terminal),
    ]
