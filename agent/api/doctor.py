"""Control API: what `berth doctor` needs of the running agent to tell whether an address
reaches it (agent.proxy.probe).

GET /doctor/probe answers, of the domains of the apps the caller's key may see, those
the proxy holds a certificate for, its own or a wildcard's (the ones worth probing on
HTTPS), and whether the caller's key is limited to apps (doctor then probes only public
addresses and keeps the remote's words to itself). GET /doctor/challenges?count=N issues
N fresh nonces, each with the answer only this proxy gives to it, answered once within
seconds; each key (and the server itself) may hold only so many unanswered (429 past
that). Any key may ask both: a nonce only lets its holder recognize this proxy, briefly."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.access import ALLOWED_APPS, visible
from agent.api.params import required, services
from agent.errors import BerthError
from agent.proxy.probe import MOST_AT_ONCE, TTL


class BadCount(BerthError):
    status = 400


async def probe(request: Request) -> Response:
    agent = services(request)
    proxy = required(agent.proxy, "the proxy is not running in this agent")
    hosts: set[str] = set()
    for name in visible(request, agent.apps.names()):
        try:
            hosts.update(agent.deployer.hosts(name))
        except BerthError:
            continue  # an app whose state cannot be read: doctor's other checks say so
    limited = request.scope.get("state", {}).get(ALLOWED_APPS) is not None
    return JSONResponse({"tls_hosts": sorted(h for h in hosts if proxy.serves_tls(h)),
                         "limited": limited})


async def challenges(request: Request) -> Response:
    proxy = required(services(request).proxy, "the proxy is not running in this agent")
    raw = request.query_params.get("count", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MOST_AT_ONCE:
        raise BadCount(f"count must be a number from 1 to {MOST_AT_ONCE}, not {raw[:20]!r}")
    caller = request.headers.get("x-berth-key", "")  # "" : the server itself
    issued = proxy.probe_challenges(int(raw), caller)
    return JSONResponse({"ttl": TTL, "challenges": [
        {"nonce": c.nonce, "answer": c.answer} for c in issued]})


def routes() -> list[BaseRoute]:
    return [Route("/doctor/probe", probe, methods=["GET"]),
            Route("/doctor/challenges", challenges, methods=["GET"])]
