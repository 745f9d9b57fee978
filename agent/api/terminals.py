"""Control API: a terminal session over a WebSocket, whatever runs at its far end.

`berth run` (agent.api.runs) and the add-on clients (agent.api.addons) from a terminal:
binary frames are keystrokes in and the terminal's output out; the client's text frames
`{"size": [columns, rows]}` resize it; the last frame is `{"exit": status}` or
`{"error": message}` (one line). The session's first size comes in the query
(`columns`, `rows`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.api.params import number
from agent.deploy.runtime import Terminal
from agent.errors import BerthError

# What runs in the session: given the terminal and its size, the exit status.
Session = Callable[[Terminal, tuple[int, int]], Awaitable[int]]


async def serve_terminal(websocket: WebSocket, session: Session) -> None:
    """Accept, run `session` with the WebSocket as its terminal, then say how it ended
    (unheard when the client has gone)."""
    await websocket.accept()
    try:
        size = terminal_size(websocket.query_params.get("columns", "80"),
                             websocket.query_params.get("rows", "24"))
        code = await session(WebSocketTerminal(websocket), size)
    except BerthError as exc:
        await _say_last(websocket, {"error": str(exc).splitlines()[0]})
        return
    except WebSocketDisconnect:
        return
    await _say_last(websocket, {"exit": code})


class WebSocketTerminal:
    """The user's terminal at the far end of a WebSocket (agent.deploy.runtime.Terminal)."""

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
                return terminal_size(str(columns), str(rows))
            except (ValueError, KeyError, TypeError, BerthError):
                continue  # not a size: ignored

    async def send(self, data: bytes) -> None:
        await self._websocket.send_bytes(data)


def terminal_size(columns: str, rows: str) -> tuple[int, int]:
    return (number(columns, "terminal width", 1, 9999),
            number(rows, "terminal height", 1, 9999))


async def _say_last(websocket: WebSocket, message: dict[str, Any]) -> None:
    try:
        await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        return
    try:
        await websocket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass
