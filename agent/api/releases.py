"""Control API: an app's releases (list, one release's details and build log, rollback)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, number, services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.releases import Release


def _release_row(release: Release) -> dict[str, Any]:
    return {
        "version": release.number,
        "state": release.state.value,
        "description": release.description,
        "created_at": release.created_at,
        "finished_at": release.finished_at,
        "git_sha": release.git_sha,
        "builder": release.builder,
        "processes": dict(release.processes),
        "error": release.error,
    }


async def list_releases(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    agent.apps.get(name)
    return JSONResponse([_release_row(r) for r in agent.releases.recent(name)])


async def release_info(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    number = _version(request.path_params["version"])
    release = agent.releases.get(name, number)
    row = _release_row(release)
    row["config_keys"] = sorted(release.config)
    row["log"] = agent.releases.log(name, number)
    return JSONResponse(row)


MAX_RELEASE = 2**31 - 1


def _version(text: str) -> int:
    return number(text.removeprefix("v"), "release (vN)", 1, MAX_RELEASE)


async def rollback(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    body = await json_body(request)
    version = body.get("version")
    number = _version(str(version)) if version is not None else None
    agent.apps.get(name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        release = await agent.deployer.rollback(name, number, out)
        return {"release": release.number}

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/releases", list_releases, methods=["GET"]),
        Route("/releases/{version}", release_info, methods=["GET"]),
        Route("/rollback", rollback, methods=["POST"]),
    ]
