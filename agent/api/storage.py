"""Control API: an app's persistent storage (container paths kept on the host)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.api.services import Services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput


def mounts_view(agent: Services, name: str) -> dict[str, Any]:
    return {"mounts": [{"path": path, "host": str(host)}
                       for path, host in agent.storage_service().mounts(name)]}


async def list_storage(request: Request) -> Response:
    agent = services(request)
    return JSONResponse(mounts_view(agent, app_param(request)))


async def change_storage(request: Request) -> Response:
    """Mount (POST) or unmount (DELETE) a container path, then restart the live release
    with zero downtime unless told not to; a failed restart undoes the change."""
    agent = services(request)
    name = app_param(request)
    body = await json_body(request)
    mount = request.method == "POST"
    restart = body.get("restart", True) is not False
    storage = agent.storage_service()
    path = storage.change(name, str(body.get("path", "")), mount=mount)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        await storage.apply(name, path, out, mount=mount, restart=restart)
        return mounts_view(agent, name)

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/storage", list_storage, methods=["GET"]),
        Route("/storage", change_storage, methods=["POST", "DELETE"]),
    ]
