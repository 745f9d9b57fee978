"""Control API: an app's config vars (read; set and unset, with or without a release)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.services.configvars import ConfigChange


async def get_config(request: Request) -> Response:
    return JSONResponse(services(request).config_service().get(app_param(request)))


async def change_config(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    body = await json_body(request)
    change = ConfigChange.parse(body.get("set", {}), body.get("unset", []))
    config_vars = agent.config_service()
    config_vars.check(name, change)
    restart = body.get("restart", True) is not False

    async def operation(out: DeployOutput) -> dict[str, Any]:
        release = await config_vars.change(name, change, out, restart=restart)
        return {"release": release.number if release else None}

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/config", get_config, methods=["GET"]),
        Route("/config", change_config, methods=["POST"]),
    ]
