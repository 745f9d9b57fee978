"""Where a request goes: an answer the proxy gives itself, or a route to forward it on.

`dispatch` only delegates, through small named guards applied in order (as kamal-proxy's
service does): an ACME challenge over HTTP, `berth doctor`'s probe (agent.proxy.probe,
over HTTP or HTTPS; both sit under `/.well-known/`, so other requests pay one prefix
test for the two), no route for the host (404; 503 with
Retry-After while the routes are still being restored), a Host of another app than the
TLS connection's SNI name (421), the redirect to HTTPS, a declared body over the app's
limit (413). A request that passes them all is forwarded along the route returned. Reads
the route table and the stores, writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from agent.proxy import pages
from agent.proxy.challenges import PREFIX as CHALLENGE_PREFIX
from agent.proxy.probe import PREFIX as PROBE_PREFIX

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.request_head import RequestHead
    from agent.proxy.routes import Route

_REDIRECT_METHODS = (b"GET", b"HEAD")
_WELL_KNOWN = b"/.well-known/"


class Answer(NamedTuple):
    """A complete response the proxy writes itself (`route`: the app it counts for), as
    to GET: the exchange writes its head only to HEAD."""

    status: int
    response: bytes
    route: Route | None = None


def dispatch(
    ctx: Context, head: RequestHead, tls: bool, sni: str, keep_alive: bool, complete: bool
) -> Answer | Route:
    """The answer to give for `head`, or the route to forward it on."""
    close = not keep_alive or not complete  # unread body bytes: close after an error
    if head.target.startswith(_WELL_KNOWN):
        answer = _well_known(ctx, head, tls, keep_alive, close)
        if answer is not None:
            return answer
    route = ctx.table.lookup(head.host)
    if route is None:
        return _no_route(ctx, close)
    if tls and _misdirected(ctx, head, sni, route):
        return error(421, close)
    https_port = ctx.https_port
    if (
        not tls
        and https_port is not None
        and route.options.https_redirect
        and ctx.certificates.covers(head.host)
    ):
        return _redirect(head, https_port, keep_alive, route)
    length = head.content_length
    if length is not None and length > route.options.max_body_bytes:
        return error(413, close, route)
    return route


def error(status: int, close: bool, route: Route | None = None) -> Answer:
    """An error page."""
    return Answer(status, pages.error_response(status, close), route)


def _well_known(
    ctx: Context, head: RequestHead, tls: bool, keep_alive: bool, close: bool
) -> Answer | None:
    """The proxy's own answers under /.well-known/ (None: the app's path, forwarded)."""
    target = head.target
    if target.startswith(CHALLENGE_PREFIX) and not tls:
        return _challenge(ctx, head, keep_alive, close)
    if target.startswith(PROBE_PREFIX):
        proof = ctx.probe.answer(target)
        if proof is None:
            return error(404, close)
        return Answer(200, pages.challenge_response(proof, not keep_alive))
    return None


def _challenge(ctx: Context, head: RequestHead, keep_alive: bool, close: bool) -> Answer:
    answer = ctx.challenges.answer(head.target)
    if answer is None:
        return error(404, close)
    return Answer(200, pages.challenge_response(answer, not keep_alive))


def _no_route(ctx: Context, close: bool) -> Answer:
    if not ctx.restoring:
        return error(404, close)
    return Answer(503, pages.starting_response(close))


def _misdirected(ctx: Context, head: RequestHead, sni: str, route: Route) -> bool:
    """The connection was set up for another app (its SNI, its certificate): that app's
    connection must not reach this one (Caddy answers 421 too)."""
    return head.host != sni and ctx.table.lookup(sni) is not route


def _redirect(head: RequestHead, https_port: int, keep_alive: bool, route: Route) -> Answer:
    host = head.host.encode()
    if https_port != 443:
        host += b":%d" % https_port
    location = b"https://" + host + (head.target if head.target != b"*" else b"/")
    status = 301 if head.method in _REDIRECT_METHODS else 308
    return Answer(status, pages.redirect_response(status, location, not keep_alive), route)
