"""Control API endpoints for SSH keys (who may push and run verbs over SSH)."""

from __future__ import annotations

import shlex
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent import forcedcommand
from agent.api.params import json_body, services
from agent.api.services import Services
from agent.names import check_key_name
from agent.sshkeys import parse_public_key, render, write_authorized_keys
from agent.store.keys import SshKey


def sync_authorized_keys(s: Services) -> None:
    """Rewrite the berth user's authorized_keys from the database; its lines run the
    forced command's script, (re)written first."""
    paths = s.config.paths
    forcedcommand.install(paths.forced_command, forcedcommand.script(paths.repos, s.ssh_command))
    path = s.config.ssh.authorized_keys
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    text = render(existing, shlex.quote(str(paths.forced_command)), s.keys.list())
    write_authorized_keys(path, text, owner=s.config.ssh.user)


async def list_keys(request: Request) -> Response:
    return JSONResponse([
        {"name": k.name, "fingerprint": k.fingerprint, "created_at": k.created_at}
        for k in services(request).keys.list()
    ])


async def add_key(request: Request) -> Response:
    s = services(request)
    body = await json_body(request)
    name = check_key_name(str(body.get("name", "")))
    public_key, fingerprint = parse_public_key(str(body.get("public_key", "")))
    s.keys.add(SshKey(name, public_key, fingerprint, time.time()))
    try:
        sync_authorized_keys(s)
    except BaseException:
        s.keys.remove(name)
        raise
    return JSONResponse({"name": name, "fingerprint": fingerprint}, status_code=201)


async def remove_key(request: Request) -> Response:
    s = services(request)
    name = check_key_name(request.path_params["name"])
    s.keys.remove(name)
    sync_authorized_keys(s)
    return JSONResponse({"removed": name})


def routes() -> list[BaseRoute]:
    return [
        Route("/keys", list_keys, methods=["GET"]),
        Route("/keys", add_key, methods=["POST"]),
        Route("/keys/{name}", remove_key, methods=["DELETE"]),
    ]
