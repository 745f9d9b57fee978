"""Control API: an app's domains (its default one under deploy.domain, and custom ones)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services


async def list_domains(request: Request) -> Response:
    domains = services(request).domain_service()
    name = app_param(request)
    return JSONResponse({"domains": domains.hosts(name), "custom": domains.custom(name)})


async def add_domain(request: Request) -> Response:
    domains = services(request).domain_service()
    name = app_param(request)
    domain = str((await json_body(request)).get("domain", ""))
    return JSONResponse({"domains": await domains.add(name, domain)}, status_code=201)


async def remove_domain(request: Request) -> Response:
    domains = services(request).domain_service()
    name = app_param(request)
    return JSONResponse({"domains": await domains.remove(name, request.path_params["domain"])})


def app_routes() -> list[BaseRoute]:
    return [
        Route("/domains", list_domains, methods=["GET"]),
        Route("/domains", add_domain, methods=["POST"]),
        Route("/domains/{domain}", remove_domain, methods=["DELETE"]),
    ]
