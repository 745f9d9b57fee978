"""Control API endpoints for the host firewall (a thin layer over FirewallService).

Every answer carries `text`, what the CLI prints, beside the structured fields.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import json_body, services
from agent.errors import BerthError
from agent.firewall import FirewallService


def _firewall(request: Request) -> FirewallService:
    firewall = services(request).firewall
    if firewall is None:
        raise BerthError("the firewall is not available in this agent")
    return firewall


def _ssh_connection(body: dict[str, Any]) -> str | None:
    value = body.get("ssh_connection")
    return str(value) if value else None


async def status(request: Request) -> Response:
    body = {"ssh_connection": request.query_params.get("ssh_connection")}
    result = await _firewall(request).status(ssh_connection=_ssh_connection(body))
    return JSONResponse({**result.to_dict(), "text": result.render()})


async def apply(request: Request) -> Response:
    firewall = _firewall(request)
    body = await json_body(request)
    connection = _ssh_connection(body)
    if body.get("dry_run"):
        plan = await firewall.plan(connection)
        return JSONResponse({**plan.to_dict(), "text": plan.render()})
    within = body.get("confirm_within")
    if within is not None and (isinstance(within, bool) or not isinstance(within, (int, float))
                               or not 5 <= within <= 3600):
        raise BerthError("--confirm-within takes 5 to 3600 seconds")
    result = await firewall.apply(ssh_connection=connection, confirm_within=within)
    return JSONResponse({**result.to_dict(), "text": result.render()})


async def confirm(request: Request) -> Response:
    return JSONResponse({"text": await _firewall(request).confirm()})


async def disable(request: Request) -> Response:
    return JSONResponse({"text": await _firewall(request).disable()})


def routes() -> list[BaseRoute]:
    return [
        Route("/firewall", status, methods=["GET"]),
        Route("/firewall/apply", apply, methods=["POST"]),
        Route("/firewall/confirm", confirm, methods=["POST"]),
        Route("/firewall/disable", disable, methods=["POST"]),
    ]
