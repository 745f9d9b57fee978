"""Control API: what `berth doctor` needs of the running agent to tell whether an address
reaches it. GET /doctor/probe answers the proxy's probe token (agent.proxy.probe) and,
of the domains of the apps the caller's key may see, those the proxy holds a certificate
for, its own or a wildcard's (the ones worth probing on HTTPS). Any key may ask: the token only lets its holder
recognize this proxy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.access import visible
from agent.api.params import required, services
from agent.errors import BerthError


async def probe(request: Request) -> Response:
    agent = services(request)
    proxy = required(agent.proxy, "the proxy is not running in this agent")
    hosts: set[str] = set()
    for name in visible(request, agent.apps.names()):
        try:
            hosts.update(agent.deployer.hosts(name))
        except BerthError:
            continue  # an app whose state cannot be read: doctor's other checks say so
    return JSONResponse({"token": proxy.probe_token,
                         "tls_hosts": sorted(h for h in hosts if proxy.serves_tls(h))})


def routes() -> list[BaseRoute]:
    return [Route("/doctor/probe", probe, methods=["GET"])]
