"""Assembling the control API: routes of every resource, one error handler."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api import apps, certs, firewall, keys
from agent.api.services import Services
from agent.errors import BerthError

log = logging.getLogger(__name__)


async def version(request: Request) -> Response:
    s: Services = request.app.state.services
    return JSONResponse({"version": s.version})


async def berth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BerthError)
    return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=exc.status)


async def crashed(request: Request, exc: Exception) -> Response:
    log.error("request crashed path=%s", request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"},
                        status_code=500)


def build_api(services: Services, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    routes: list[BaseRoute] = [Route("/version", version, methods=["GET"])]
    routes += apps.routes() + keys.routes() + certs.routes() + firewall.routes()
    routes += extra_routes or []
    api = Starlette(
        routes=routes,
        exception_handlers={BerthError: berth_error, Exception: crashed},
    )
    api.state.services = services
    api.state.background_tasks = set()
    return api
