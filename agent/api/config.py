"""Control API: an app's config vars (read; set and unset, with or without a release)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.names import check_config_key


async def get_config(request: Request) -> Response:
    return JSONResponse(services(request).apps.config(app_param(request)))


async def change_config(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    to_set = body.get("set", {})
    to_unset = body.get("unset", [])
    if not isinstance(to_set, dict) or not isinstance(to_unset, list):
        raise BerthError("expected {'set': {KEY: VALUE}, 'unset': [KEY]}")
    for key, value in to_set.items():
        check_config_key(str(key))
        if not isinstance(value, str):
            raise BerthError(f"the value of {key} must be a string")
    config = s.apps.config(name)
    missing = [k for k in to_unset if k not in config]
    if missing:
        raise BerthError(f"{name} has no config var {missing[0]!r}")
    config.update(to_set)
    for key in to_unset:
        config.pop(key)
    changes = []
    if to_set:
        changes.append("Set " + ", ".join(sorted(to_set)))
    if to_unset:
        changes.append("Unset " + ", ".join(sorted(to_unset)))
    if not changes:
        raise BerthError("nothing to change: give KEY=VALUE pairs to set or KEYs to unset")
    described = "; ".join(changes)
    restart = body.get("restart", True) is not False

    async def operation(out: DeployOutput) -> dict[str, Any]:
        if not restart:
            s.apps.replace_config(name, config)
            s.events.record(name, "ConfigChanged", described + " (no restart)")
            out.heading(f"{described}; not restarted (takes effect on the next release)")
            return {"release": None}
        release = await s.deployer.release_config(name, config, described, out)
        if release is None:
            out.heading(f"{described}; {name} is not deployed yet, nothing to restart")
        return {"release": release.number if release else None}

    return stream_operation(request, operation)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/config", get_config, methods=["GET"]),
        Route("/config", change_config, methods=["POST"]),
    ]
