"""The audit trail's one writer: every change asked of the control API (any request but
GET and HEAD, and those too when refused to a key) is recorded with who asked, the verb,
the app and how it ended.

Who and which verb come from the CLI's headers: `X-Berth-Actor` (the SSH key's name
when the CLI runs as the forced command, `root@server` on the server; the control socket
is open to root and the berth user only) and `X-Berth-Verb`. A streamed operation's
outcome is its last event: `ok`, or its error's line.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.store.audit import AuditStore
from agent.text import printable

ACTOR_HEADER = b"x-berth-actor"
VERB_HEADER = b"x-berth-verb"
AUDIT_APP = "audit_app"  # request.state key: the app a handler acted on, when not in the path
_TAIL_BYTES = 8192


class AuditTrail:
    """ASGI middleware around the control API."""

    def __init__(self, app: ASGIApp, store: AuditStore) -> None:
        self._app = app
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        reading = scope["method"] in ("GET", "HEAD")  # recorded only when refused
        headers = dict(scope["headers"])
        actor = _header(headers, ACTOR_HEADER) or "unknown"
        verb = _header(headers, VERB_HEADER) or f"{scope['method']} {scope['path']}"
        state: dict[str, Any] = scope.setdefault("state", {})
        outcome = _Outcome()

        async def watched(message: Message) -> None:
            outcome.see(message)
            await send(message)

        try:
            await self._app(scope, receive, watched)
        finally:
            if not reading or outcome.refused:
                app = _app_in(scope["path"]) or str(state.get(AUDIT_APP, ""))
                self._store.record(actor, verb, app, outcome.text())


def _header(headers: dict[bytes, bytes], name: bytes) -> str:
    value = headers.get(name, b"").decode("latin-1")
    return printable(value)[:64]


def _app_in(path: str) -> str:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "apps" else ""


class _Outcome:
    """What a response said, from its status and the end of its body."""

    def __init__(self) -> None:
        self._status: int | None = None
        self._tail = b""

    @property
    def refused(self) -> bool:
        return self._status == 403

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
        elif message["type"] == "http.response.body":
            self._tail = (self._tail + message.get("body", b""))[-_TAIL_BYTES:]

    def text(self) -> str:
        if self._status is None:
            return "failed: no answer"
        last = self._last_event()
        error = last.get("error") if isinstance(last, dict) else None
        if error:
            return f"failed: {str(error).splitlines()[0][:200]}"
        if self._status >= 400:
            return f"failed: status {self._status}"
        if isinstance(last, dict) and "line" in last:
            return "client left before the end"
        return "ok"

    def _last_event(self) -> Any:
        lines = [line for line in self._tail.splitlines() if line.strip()]
        try:
            return json.loads(lines[-1]) if lines else None
        except (ValueError, UnicodeDecodeError):
            return None
