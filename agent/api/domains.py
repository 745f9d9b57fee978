"""Control API: an app's domains (its default one under deploy.domain, and custom ones)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, services
from agent.errors import Conflict
from agent.names import check_domain


async def list_domains(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    return JSONResponse({"domains": s.deployer.hosts(name), "custom": s.apps.domains(name)})


async def add_domain(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    domain = check_domain(str((await json_body(request)).get("domain", "")))
    if s.config.deploy.domain and domain == f"{name}.{s.config.deploy.domain}":
        raise Conflict(f"{domain} is already {name}'s default domain")
    s.apps.add_domain(name, domain)
    s.events.record(name, "DomainAdded", domain)
    await s.deployer.refresh_routing(name)
    return JSONResponse({"domains": s.deployer.hosts(name)}, status_code=201)


async def remove_domain(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    domain = request.path_params["domain"]
    s.apps.remove_domain(name, domain)
    s.events.record(name, "DomainRemoved", domain)
    await s.deployer.refresh_routing(name)
    return JSONResponse({"domains": s.deployer.hosts(name)})


def app_routes() -> list[BaseRoute]:
    return [
        Route("/domains", list_domains, methods=["GET"]),
        Route("/domains", add_domain, methods=["POST"]),
        Route("/domains/{domain}", remove_domain, methods=["DELETE"]),
    ]
