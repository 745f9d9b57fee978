"""Who may do what: every request made for an SSH key (the forced command's CLI and the
push hook send `X-Berth-Key`) is checked against that key's scope before any handler
runs. Requests without the header come from the server itself (root or the berth user
on the control socket) and may do everything.

An admin key may do everything. An app key may push to and use the verbs of the apps it
lists (config, domains, ps, logs, run, releases, rollback, storage, apps:info/set,
apps:create and apps:destroy of those names), and the add-ons and backups of those apps
(addons, addons:create/destroy/restart, backups, capture, download, restore, verify,
schedules); `apps` and `events` show it only those apps; of `doctor`, exactly what its
ports check asks (GET /doctor/probe, only their domains, and /doctor/challenges); keys,
firewall, certificates,
the server-wide add-on list (/addons) and whole-server backup and restore (/server) need
an admin key.
"""

from __future__ import annotations

import json

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.errors import BerthError
from agent.store.keys import KeyStore, SshKey

KEY_HEADER = b"x-berth-key"
ALLOWED_APPS = "allowed_apps"  # request.state: the apps an app key may act on
DOCTOR_PATHS = ("/doctor/probe", "/doctor/challenges")  # what an app key's doctor asks


class Forbidden(BerthError):
    status = 403


def refusal(key: SshKey, method: str, path: str) -> str | None:
    """Why `key` may not make this request (None: it may). Pure."""
    if key.apps is None:
        return None
    parts = path.strip("/").split("/")
    reading = method in ("GET", "HEAD")
    if parts[0] == "version" or (reading and (parts[0] == "events" or path in DOCTOR_PATHS)):
        return None
    if parts[0] == "apps" and len(parts) == 1:
        return None  # listed, or created, within the key's apps (checked by the handler)
    if parts[0] == "apps":
        if parts[1] not in key.apps:
            return f"key {key.name} may not act on app {parts[1]}"
        if len(parts) < 3 or parts[2] != "certs":
            return None
    return f"key {key.name} is limited to apps ({', '.join(key.apps) or 'none'}): this needs an admin key"


def allowed(connection: HTTPConnection, app: str) -> None:
    """Refuse if the request's key may not act on `app` (for paths without the app)."""
    apps = connection.scope.get("state", {}).get(ALLOWED_APPS)
    if apps is not None and app not in apps:
        raise Forbidden(f"this key may not act on app {app}")


def visible(connection: HTTPConnection, apps: list[str]) -> list[str]:
    """Of `apps`, those the request's key may see."""
    scope = connection.scope.get("state", {}).get(ALLOWED_APPS)
    return apps if scope is None else [a for a in apps if a in scope]


class AccessGuard:
    """ASGI middleware: refuses (403, one JSON line) what the request's key may not do."""

    def __init__(self, app: ASGIApp, keys: KeyStore) -> None:
        self._app = app
        self._keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = dict(scope.get("headers", [])).get(KEY_HEADER)
        if scope["type"] not in ("http", "websocket") or name is None:
            await self._app(scope, receive, send)
            return
        key = self._keys.get(name.decode("latin-1"))
        why = (f"key {name.decode('latin-1')[:64]!r} is not known" if key is None
               else refusal(key, scope.get("method", "GET"), scope["path"]))
        if why is not None:
            await _refuse(scope, receive, send, why)
            return
        assert key is not None
        scope.setdefault("state", {})[ALLOWED_APPS] = key.apps
        await self._app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, why: str) -> None:
    if scope["type"] == "websocket":  # a terminal session: its last frame says why
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"error": why})})
        await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
        return
    body = json.dumps({"error": why}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
