"""Control API: an app's add-ons (create, list, show, restart, destroy) and every app's
add-ons at once. Never answers with a password or a URL holding one."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from agent.addons.model import Addon, check_name
from agent.addons.service import AddonService
from agent.addons.terminal import run_client
from agent.api.params import app_param, json_body, required, services
from agent.api.services import Services
from agent.api.streaming import stream_operation
from agent.api.terminals import serve_terminal
from agent.backups.service import BackupService
from agent.deploy.output import DeployOutput
from agent.deploy.runtime import Terminal
from agent.errors import BerthError


def addon_service(request: Request) -> AddonService:
    return required(services(request).addons, "add-ons are not available on this agent")


def backup_service(request: Request) -> BackupService:
    return required(services(request).backups, "backups are not available on this agent")


async def _view(request: Request, addon: Addon) -> dict[str, Any]:
    view = await addon_service(request).describe(addon)
    backups = services(request).backups
    latest = backups.store.latest(addon.app, addon.name) if backups else None
    view["last_backup"] = latest.public() if latest else None
    view["last_backup_age"] = round(time.time() - latest.created_at) if latest else None
    scheduler = services(request).backup_scheduler
    if scheduler is not None:
        view.update(scheduler.status(addon))
    return view


def backup_summary(agent: Services, app: str) -> dict[str, Any]:
    """What `apps` lists of an app's add-ons: how many, and those whose backups need
    attention (the last scheduled one failed, or one is overdue)."""
    count = len(agent.addons.store.of_app(app)) if agent.addons is not None else 0
    scheduler = agent.backup_scheduler
    return {"addons": count,
            "backup_problems": scheduler.problems(app) if scheduler and count else []}


async def list_all(request: Request) -> Response:
    addons = addon_service(request)
    return JSONResponse([await _view(request, a) for a in addons.store.all()])


async def list_addons(request: Request) -> Response:
    app = app_param(request)
    services(request).apps.get(app)
    addons = addon_service(request)
    return JSONResponse([await _view(request, a) for a in addons.store.of_app(app)])


async def addon_info(request: Request) -> Response:
    app = app_param(request)
    addon = addon_service(request).store.get(app, check_name(request.path_params["name"]))
    return JSONResponse(await _view(request, addon))


def _optional(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BerthError(f"{key} must be a string")
    return value


async def create_addon(request: Request) -> Response:
    app = app_param(request)
    body = await json_body(request)
    addons = addon_service(request)
    addon = addons.plan(app, str(body.get("kind", "")), _optional(body, "version"),
                        _optional(body, "as"))

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return (await addons.start_new(addon, out)).public()

    return stream_operation(request, operation)


async def restart_addon(request: Request) -> Response:
    app = app_param(request)
    name = check_name(request.path_params["name"])
    addons = addon_service(request)
    addons.store.get(app, name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        await addons.restart(app, name, out)
        return {"restarted": name}

    return stream_operation(request, operation)


async def destroy_addon(request: Request) -> Response:
    """A final backup first (unless backup=0), then the variable, container and data."""
    app = app_param(request)
    name = check_name(request.path_params["name"])
    if request.query_params.get("confirm") != app:
        raise BerthError(f"destroying {name} removes its container and data: "
                         f"confirm with --confirm {app}")
    addons = addon_service(request)
    addons.store.get(app, name)
    take_final = request.query_params.get("backup", "1") != "0"
    backups = backup_service(request) if take_final else services(request).backups

    async def operation(out: DeployOutput) -> dict[str, Any]:
        final = None
        if take_final and backups is not None:
            final = (await backups.capture(app, name, out, reason="final")).id
        await addons.destroy(app, name, out)
        if backups is not None:  # with or without a final backup: a new one starts afresh
            backups.store.forget_addon(app, name)
        return {"destroyed": name, "final_backup": final}

    return stream_operation(request, operation)


async def attach_client(websocket: WebSocket) -> None:
    """`addons:psql` / `addons:redis-cli` from a terminal over SSH (agent.api.terminals,
    agent.addons.terminal): the add-on's own client, for up to `deploy.run_timeout`."""
    agent = services(websocket)

    async def session(terminal: Terminal, size: tuple[int, int]) -> int:
        addons = required(agent.addons, "add-ons are not available on this agent")
        addon = addons.store.get(app_param(websocket), check_name(websocket.path_params["name"]))
        return await run_client(addons.engine, addon, size,
                                websocket.query_params.get("term", ""),
                                agent.config.deploy.run_timeout, terminal)

    await serve_terminal(websocket, session)


def routes() -> list[BaseRoute]:
    return [Route("/addons", list_all, methods=["GET"])]


def app_routes() -> list[BaseRoute]:
    return [
        Route("/addons", list_addons, methods=["GET"]),
        Route("/addons", create_addon, methods=["POST"]),
        Route("/addons/{name}", addon_info, methods=["GET"]),
        Route("/addons/{name}", destroy_addon, methods=["DELETE"]),
        Route("/addons/{name}/restart", restart_addon, methods=["POST"]),
        WebSocketRoute("/addons/{name}/attach", attach_client),
    ]
