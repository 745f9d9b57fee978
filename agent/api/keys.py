"""Control API endpoints for SSH keys (who may push and run verbs over SSH)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import json_body, services


async def list_keys(request: Request) -> Response:
    return JSONResponse([
        {"name": k.name, "fingerprint": k.fingerprint, "created_at": k.created_at}
        for k in services(request).key_service().list()
    ])


async def add_key(request: Request) -> Response:
    body = await json_body(request)
    key = services(request).key_service().add(str(body.get("name", "")),
                                              str(body.get("public_key", "")))
    return JSONResponse({"name": key.name, "fingerprint": key.fingerprint}, status_code=201)


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
