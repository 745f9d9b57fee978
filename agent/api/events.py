"""Control API: the audit trail (`berth events [APP]`): who changed what, and how it ended."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.access import allowed, visible
from agent.api.params import number, services
from agent.errors import BerthError
from agent.names import check_app

MAX_LIMIT = 10_000


async def list_events(request: Request) -> Response:
    agent = services(request)
    if agent.audit is None:
        raise BerthError("the audit trail is not kept by this agent")
    app = request.query_params.get("app") or None
    if app is not None:
        allowed(request, check_app(app))
    limit = number(request.query_params.get("limit", "50"), "number of events", 1, MAX_LIMIT)
    entries = agent.audit.list(app, limit)
    shown = set(visible(request, sorted({e.app for e in entries})))
    return JSONResponse([
        {"time": e.time, "actor": e.actor, "verb": e.verb, "app": e.app, "outcome": e.outcome}
        for e in entries if e.app in shown
    ])


def routes() -> list[BaseRoute]:
    return [Route("/events", list_events, methods=["GET"])]
