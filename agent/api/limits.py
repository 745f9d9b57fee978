"""Control API: an app's resource limits (`ps:limit`), per process type, `release` and
`run`; a change restarts the app's instances so they run under it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.api.services import Services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.limits import Limits, default_limits, parse_limits
from agent.names import check_process_type
from agent.store.limits import LimitStore

ONE_OFFS = ("release", "run")


def _store(agent: Services) -> LimitStore:
    if agent.limits is None:
        raise BerthError("resource limits are not available in this agent")
    return agent.limits


def limits_view(agent: Services, name: str) -> dict[str, str]:
    """What each of the app's process types (and its one-offs) runs under, as text."""
    own = _store(agent).of(name)
    defaults = default_limits(agent.config.deploy)
    app = agent.apps.get(name)
    live = agent.releases.live(name)
    processes = set(live.processes if live else app.formation) | set(own) | set(ONE_OFFS)
    return {process: own.get(process, Limits()).over(defaults).describe()
            for process in sorted(processes)}


async def show_limits(request: Request) -> Response:
    agent = services(request)
    name = app_param(request)
    return JSONResponse({"limits": limits_view(agent, name),
                         "defaults": default_limits(agent.config.deploy).describe()})


async def set_limits(request: Request) -> Response:
    """Body: {"process": TYPE, "limits": ["memory=512m", "cpus=", ...]}."""
    agent = services(request)
    name = app_param(request)
    body = await json_body(request)
    process, pairs = body.get("process"), body.get("limits")
    if not isinstance(process, str) or not isinstance(pairs, list) or not all(
            isinstance(p, str) for p in pairs):
        raise BerthError("expected a process type and limits such as memory=512m")
    check_process_type(process)
    changes, cleared = parse_limits(pairs)
    store = _store(agent)
    app = agent.apps.get(name)
    store.save(name, process, store.of(name).get(process, Limits()).with_changes(changes, cleared))

    async def operation(out: DeployOutput) -> dict[str, Any]:
        effective = limits_view(agent, name).get(process, "")
        out.heading(f"{name} {process}: {effective}")
        if process not in ONE_OFFS and not app.stopped and agent.releases.live(name):
            await agent.deployer.restart(name, out)
        return {"process": process, "limits": effective}

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/limits", show_limits, methods=["GET"]),
        Route("/limits", set_limits, methods=["POST"]),
    ]
