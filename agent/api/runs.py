"""Control API: one-off commands (`berth run`), streamed or attached to a terminal."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.api.outputstream import stream_output
from agent.api.params import app_param, json_body, number, services
from agent.deploy.runtime import OutputSink
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
    """`berth run` from a terminal, over a WebSocket: binary frames are keystrokes in and
    the container's terminal out; the client's text frames `{"size": [columns, rows]}`
    resize it; the last frame is `{"exit": status}` or `{"error": message}`. The
    container is removed when the command exits or the client goes away."""
    await websocket.accept()
    try:
        agent = services(websocket)
        name = app_param(websocket)
        size = _terminal_size(websocket.query_params.get("columns", "80"),
                              websocket.query_params.get("rows", "24"))
        code = await agent.deployer.run_attached(
            name, websocket.query_params.get("command", ""), size, _WebSocketTerminal(websocket))
    except BerthError as exc:
        await _say_last(websocket, {"error": str(exc).splitlines()[0]})
        return
    except WebSocketDisconnect:
        return
    await _say_last(websocket, {"exit": code})  # unheard if the client has gone


class _WebSocketTerminal:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive(self) -> bytes | tuple[int, int] | None:
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if message.get("bytes") is not None:
                return bytes(message["bytes"])
            try:
                columns, rows = json.loads(message.get("text") or "{}")["size"]
                return _terminal_size(str(columns), str(rows))
            except (ValueError, KeyError, TypeError, BerthError):
                continue  # not a size: ignored

    async def send(self, data: bytes) -> None:
        await self._websocket.send_bytes(data)


def _terminal_size(columns: str, rows: str) -> tuple[int, int]:
    return (number(columns, "terminal width", 1, 9999),
            number(rows, "terminal height", 1, 9999))


async def _say_last(websocket: WebSocket, message: dict[str, Any]) -> None:
    try:
        await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        return
    await _close(websocket)


async def _close(websocket: WebSocket) -> None:
    try:
        await websocket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass


def app_routes() -> list[BaseRoute]:
    return [
        Route("/run", run_one_off, methods=["POST"]),
        WebSocketRoute("/run/attach", run_with_terminal),
    ]
