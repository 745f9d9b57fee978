"""Assembling the control API: every resource's routes, one error handler.

Each resource is one module of handlers that parse, call one service method and render.
A module's `routes()` carry full paths (`/keys`, `/certs`); its `app_routes()` are
relative to one app and mounted under `/apps/{app}` (`/config` answers
`/apps/{app}/config`; the handler reads the app with `params.app_param`).

Adding a resource (add-ons, backups, limits, doctor, ...) is one line: write
`agent/api/NAME.py` with `routes()` and/or `app_routes()`, then append
`NAME.routes` to `TOP_LEVEL` or `NAME.app_routes` to `PER_APP` below. Paths must not
overlap another module's (Starlette takes the first route that matches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from agent.api import (
    addons,
    apps,
    backups,
    certs,
    config,
    deploys,
    doctor,
    domains,
    events,
    firewall,
    keys,
    limits,
    logs,
    processes,
    releases,
    runs,
    server,
    storage,
)
from agent.api.access import AccessGuard
from agent.api.audit import AuditTrail
from agent.api.params import services
from agent.api.services import Services
from agent.errors import BerthError

log = logging.getLogger(__name__)

RouteTable = Callable[[], list[BaseRoute]]

# Resources with paths of their own.
TOP_LEVEL: tuple[RouteTable, ...] = (
    apps.routes,
    keys.routes,
    certs.routes,
    firewall.routes,
    events.routes,
    addons.routes,
    server.routes,
    doctor.routes,
)

# Resources of one app, under /apps/{app}.
PER_APP: tuple[RouteTable, ...] = (
    apps.app_routes,
    config.app_routes,
    domains.app_routes,
    processes.app_routes,
    deploys.app_routes,
    runs.app_routes,
    storage.app_routes,
    logs.app_routes,
    releases.app_routes,
    certs.app_routes,
    addons.app_routes,
    backups.app_routes,
    limits.app_routes,
)


async def version(request: Request) -> Response:
    return JSONResponse({"version": services(request).version})


async def berth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BerthError)
    return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=exc.status)


async def no_route(request: Request, exc: Exception) -> Response:
    """No resource at this path or not this method: one JSON line, like every error."""
    assert isinstance(exc, HTTPException)
    what = "no such resource" if exc.status_code == 404 else exc.detail.lower()
    return JSONResponse({"error": f"{what}: {request.method} {request.url.path}"},
                        status_code=exc.status_code)


async def crashed(request: Request, exc: Exception) -> Response:
    log.error("request crashed path=%s", request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"},
                        status_code=500)


def all_routes() -> list[BaseRoute]:
    """The route table: /version, the top-level resources, then one Mount per app."""
    routes: list[BaseRoute] = [Route("/version", version, methods=["GET"])]
    for table in TOP_LEVEL:
        routes += table()
    per_app = [route for table in PER_APP for route in table()]
    # No redirects to a path with or without a slash: the CLI does not follow them.
    routes.append(Mount("/apps/{app}", app=Router(per_app, redirect_slashes=False)))
    return routes


def build_api(services: Services, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    api = Starlette(
        routes=all_routes() + (extra_routes or []),
        exception_handlers={BerthError: berth_error, HTTPException: no_route,
                            Exception: crashed},
        middleware=[
            *([Middleware(AuditTrail, store=services.audit)] if services.audit else []),
            Middleware(AccessGuard, keys=services.keys),  # refusals are audited too
        ],
    )
    api.router.redirect_slashes = False
    api.state.services = services
    api.state.background_tasks = set()
    return api
