"""Control API endpoints for SSH keys (who may push and run verbs over SSH)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import json_body, services
from agent.errors import BerthError
from agent.store.keys import SshKey


def _row(key: SshKey) -> dict[str, Any]:
    return {"name": key.name, "fingerprint": key.fingerprint, "created_at": key.created_at,
            "admin": key.admin, "apps": None if key.apps is None else list(key.apps)}


async def list_keys(request: Request) -> Response:
    return JSONResponse([_row(k) for k in services(request).key_service().list()])


async def add_key(request: Request) -> Response:
    body = await json_body(request)
    apps = body.get("apps")
    if apps is not None and (not isinstance(apps, list)
                             or not all(isinstance(a, str) for a in apps)):
        raise BerthError("apps must be a list of app names (or null: an admin key)")
    key = services(request).key_service().add(str(body.get("name", "")),
                                              str(body.get("public_key", "")), apps)
    return JSONResponse(_row(key), status_code=201)


async def remove_key(request: Request) -> Response:
    name = request.path_params["name"]
    services(request).key_service().remove(name)
    return JSONResponse({"removed": name})


def routes() -> list[BaseRoute]:
    return [
        Route("/keys", list_keys, methods=["GET"]),
        Route("/keys", add_key, methods=["POST"]),
        Route("/keys/{name}", remove_key, methods=["DELETE"]),
    ]
