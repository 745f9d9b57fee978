"""Control API: an app's backups (capture, list, download, restore, verify)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.addons.model import check_name
from agent.api.addons import backup_service
from agent.api.params import app_param, json_body, required, services
from agent.api.streaming import stream_operation
from agent.backups import restore
from agent.backups.restore import AppInstances
from agent.backups.schedule import Schedule
from agent.deploy.output import DeployOutput
from agent.errors import BerthError

_CHUNK = 1024 * 1024


async def list_backups(request: Request) -> Response:
    app = app_param(request)
    services(request).apps.get(app)
    backups = backup_service(request)
    return JSONResponse([backups.describe(b) for b in backups.store.of_app(app)])


async def capture(request: Request) -> Response:
    app = app_param(request)
    body = await json_body(request)
    name = body.get("addon")
    if name is not None:
        name = check_name(str(name))
    backups = backup_service(request)
    backups.addon_for(app, name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return backups.describe(await backups.capture(app, name, out))

    return stream_operation(request, operation)


async def download(request: Request) -> Response:
    """The backup's bytes, streamed from the file (never whole in memory)."""
    app = app_param(request)
    backups = backup_service(request)
    backup = backups.get(app, request.path_params["backup"])
    path = await backups.ensure_local(backup, DeployOutput())
    handle = path.open("rb")

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    # Chunked, not a Content-Length: the client then writes each piece as it comes.
    return StreamingResponse(chunks(), media_type="application/octet-stream")


def _instances(request: Request) -> AppInstances:
    return required(services(request).app_instances, "restores are not available on this agent")


async def restore_backup(request: Request) -> Response:
    app = app_param(request)
    backup_id = request.path_params["backup"]
    if request.query_params.get("confirm") != app:
        raise BerthError(f"restoring replaces the add-on's data and stops {app} meanwhile: "
                         f"confirm with --confirm {app}")
    backups = backup_service(request)
    backups.get(app, backup_id)
    instances = _instances(request)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return backups.describe(await restore.restore(backups, instances, app, backup_id, out))

    return stream_operation(request, operation)


async def verify(request: Request) -> Response:
    app = app_param(request)
    backup_id = request.path_params["backup"]
    backups = backup_service(request)
    backups.get(app, backup_id)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return await restore.verify(backups, app, backup_id, out)

    return stream_operation(request, operation)


async def set_schedule(request: Request) -> Response:
    """backups:schedule APP NAME HH:MM --keep-daily N --keep-weekly M."""
    app = app_param(request)
    name = check_name(request.path_params["name"])
    backups = backup_service(request)
    addon = backups.addons.store.get(app, name)
    body = await json_body(request)
    try:
        wanted = Schedule(str(body.get("at", "")), int(body.get("keep_daily", 7)),
                          int(body.get("keep_weekly", 4)))
    except (TypeError, ValueError):
        raise BerthError("keep counts must be whole numbers") from None
    backups.store.set_schedule(app, name, wanted)
    services(request).events.record(app, "BackupScheduled",
                                    f"{name}: daily at {wanted.at} UTC, keep {wanted.keep_daily} "
                                    f"daily and {wanted.keep_weekly} weekly")
    scheduler = services(request).backup_scheduler
    return JSONResponse(scheduler.status(addon) if scheduler else {"at": wanted.at})


def app_routes() -> list[BaseRoute]:
    return [
        Route("/addons/{name}/schedule", set_schedule, methods=["PUT"]),
        Route("/backups", list_backups, methods=["GET"]),
        Route("/backups", capture, methods=["POST"]),
        Route("/backups/{backup}/download", download, methods=["GET"]),
        Route("/backups/{backup}/restore", restore_backup, methods=["POST"]),
        Route("/backups/{backup}/verify", verify, methods=["POST"]),
    ]
