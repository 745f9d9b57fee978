"""Control API: an app's persistent storage (container paths kept on the host)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent import storage as persistent
from agent.api.params import app_param, json_body, services
from agent.api.services import Services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.errors import BerthError


def mounts_view(s: Services, name: str) -> dict[str, Any]:
    root = s.config.paths.storage
    return {"mounts": [{"path": path, "host": str(persistent.host_dir(root, name, path))}
                       for path in s.apps.mounts(name)]}


async def list_storage(request: Request) -> Response:
    s = services(request)
    return JSONResponse(mounts_view(s, app_param(request)))


async def change_storage(request: Request) -> Response:
    """Mount (POST) or unmount (DELETE) a container path, then restart the live release
    with zero downtime unless told not to; a failed restart undoes the change."""
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    path = persistent.check_mount_path(str(body.get("path", "")))
    mount = request.method == "POST"
    restart = body.get("restart", True) is not False
    if mount:
        s.apps.add_mount(name, path)
    else:
        s.apps.remove_mount(name, path)

    def undo() -> None:
        try:
            if mount:
                s.apps.remove_mount(name, path)
            else:
                s.apps.add_mount(name, path)
        except BerthError:  # changed again meanwhile: leave that change be
            pass

    async def operation(out: DeployOutput) -> dict[str, Any]:
        if mount:
            out.heading(f"{path} of {name} is kept in {persistent.host_dir(s.config.paths.storage, name, path)}")
        else:
            out.heading(f"{path} of {name} is no longer mounted (its data stays on disk)")
        deployed = s.releases.live(name) is not None
        if restart and deployed and not s.apps.get(name).stopped:
            try:
                await s.deployer.restart(name, out)
            except BaseException:
                undo()
                raise
        elif deployed:
            out.heading(f"Takes effect at the next deploy or berth ps:restart {name}")
        s.events.record(name, "StorageMounted" if mount else "StorageUnmounted", path)
        return mounts_view(s, name)

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/storage", list_storage, methods=["GET"]),
        Route("/storage", change_storage, methods=["POST", "DELETE"]),
    ]
