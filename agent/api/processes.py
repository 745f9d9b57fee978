"""Control API: an app's processes (instances, scaling, restart/stop/start)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.deploy.runtime import Container
from agent.errors import BerthError
from agent.names import check_process_type


def _instance_row(container: Container, now: float, stopping: bool) -> dict[str, Any]:
    instance = container.instance
    return {
        "dyno": instance.dyno if instance else container.name,
        "process": instance.process if instance else "",
        "release": container.release,
        # Out of the route already, exiting: not one of the app's running instances.
        "state": "stopping" if stopping and container.running else container.state,
        "uptime": round(now - container.started_at) if container.running and container.started_at else None,
        "restarts": container.restart_count,
        "port": container.host_port,
        "container": container.name,
    }


async def list_processes(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    app = agent.apps.get(name)
    containers = [c for c in await agent.runtime.containers(name) if c.role == "process"]
    now = time.time()
    stopping = agent.deployer.stopping(name)
    rows = sorted((_instance_row(c, now, c.id in stopping) for c in containers),
                  key=lambda r: (r["process"], r["dyno"]))
    return JSONResponse({"formation": dict(app.formation), "stopped": app.stopped,
                         "instances": rows})


async def scale(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    body = await json_body(request)
    changes: dict[str, int] = {}
    for process, count in body.items():
        check_process_type(str(process))
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100:
            raise BerthError(f"{process}: the count must be an integer from 0 to 100")
        changes[str(process)] = count
    if not changes:
        raise BerthError("nothing to scale: give TYPE=COUNT, e.g. web=2")

    async def operation(out: DeployOutput) -> dict[str, Any]:
        formation = await agent.deployer.scale(name, changes, out)
        out.heading("Scaled to " + " ".join(f"{k}={v}" for k, v in sorted(formation.items())))
        return {"formation": formation}

    return stream_operation(request, operation)


Action = Callable[[str, DeployOutput], Awaitable[None]]


def _action(action: str) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ps:restart, ps:stop or ps:start."""

    async def handler(request: Request) -> Response:
        agent = services(request)
        name = app_param(request)
        agent.apps.get(name)
        run: Action = getattr(agent.deployer, action)

        async def operation(out: DeployOutput) -> dict[str, Any]:
            await run(name, out)
            out.heading(f"{name}: {action} done")
            return {"done": action}

        return stream_operation(request, operation)

    return handler


def app_routes() -> list[BaseRoute]:
    return [
        Route("/ps", list_processes, methods=["GET"]),
        Route("/ps/scale", scale, methods=["POST"]),
        *(Route(f"/ps/{action}", _action(action), methods=["POST"])
          for action in ("restart", "stop", "start")),
    ]
