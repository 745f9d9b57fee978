"""Control API: apps themselves (list, create, info, destroy, settings, the repository a
first push creates)."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.access import allowed, visible
from agent.api.addons import backup_summary
from agent.api.audit import AUDIT_APP
from agent.api.limits import limits_view
from agent.api.params import app_param, json_body, services
from agent.api.services import Services
from agent.api.storage import mounts_view
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.store.db import UnreadableRow


def _summary(agent: Services, name: str) -> dict[str, Any]:
    app = agent.apps.get(name)
    live = agent.releases.live(name)
    return {
        "name": name,
        "release": live.number if live else None,
        "git_sha": live.git_sha if live else None,
        "domains": agent.deployer.hosts(name),
        "formation": dict(app.formation),
        "stopped": app.stopped,
        **backup_summary(agent, name),
    }


async def list_apps(request: Request) -> Response:
    agent = services(request)
    return JSONResponse([_listed(agent, name) for name in visible(request, agent.apps.names())])


def _listed(agent: Services, name: str) -> dict[str, Any]:
    """An app's summary; one whose stored state cannot be read is listed with why."""
    try:
        return _summary(agent, name)
    except UnreadableRow as exc:
        return {"name": name, "release": None, "git_sha": None, "domains": [],
                "formation": {}, "stopped": False, "error": str(exc)}


async def create_app(request: Request) -> Response:
    agent = services(request)
    name = str((await json_body(request)).get("name", ""))
    setattr(request.state, AUDIT_APP, name[:64])
    allowed(request, name)
    agent.app_service().create(name)
    return JSONResponse(_summary(agent, name), status_code=201)


async def ensure_app_repo(request: Request) -> Response:
    """First push: create the app if needed; always (re)install the repo's hooks."""
    path, created = services(request).app_service().ensure_for_push(app_param(request))
    return JSONResponse({"path": str(path), "created": created})


async def app_info(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    info = _summary(agent, name)
    app = agent.apps.get(name)
    info["settings"] = app.settings.to_json()
    info["deploy_branches"] = list(app.settings.deploy_branches)
    info["created_at"] = app.created_at
    info["repo"] = str(agent.config.paths.repo(name))
    info["storage"] = mounts_view(agent, name)["mounts"]
    info["events"] = [
        {"time": e.time, "kind": e.kind, "message": e.message} for e in agent.events.list(name, 10)
    ]
    info["traffic"] = _traffic(agent, name)
    info["limits"] = limits_view(agent, name) if agent.limits is not None else {}
    return JSONResponse(info)


def _traffic(agent: Services, name: str) -> dict[str, int] | None:
    """The proxy's counters for the app since the agent started (None: never routed)."""
    if agent.proxy is None:
        return None
    try:
        counters = agent.proxy.counters(name)
    except BerthError:
        return None
    return dataclasses.asdict(counters)


async def destroy_app(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    if request.query_params.get("confirm") != name:
        raise BerthError(f"destroying {name} removes its containers, images, repository and "
                         f"data: confirm with --confirm {name}")
    agent.apps.get(name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        await agent.app_service().destroy(name, out)
        return {"destroyed": name}

    return stream_operation(request, operation)


async def set_app_settings(request: Request) -> Response:
    name = app_param(request)
    body = await json_body(request)
    changes = {str(key): str(value) for key, value in body.items()}
    settings = await services(request).app_service().set(name, changes)
    return JSONResponse(settings.to_json())


def routes() -> list[BaseRoute]:
    return [
        Route("/apps", list_apps, methods=["GET"]),
        Route("/apps", create_app, methods=["POST"]),
        Route("/apps/{app}", app_info, methods=["GET"]),
        Route("/apps/{app}", destroy_app, methods=["DELETE"]),
    ]


def app_routes() -> list[BaseRoute]:
    return [
        Route("/repo", ensure_app_repo, methods=["POST"]),
        Route("/settings", set_app_settings, methods=["PATCH"]),
    ]
