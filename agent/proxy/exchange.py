"""One request and its response, from a parsed head to the last byte.

An `Exchange` is created by the client connection for each request head, in order. When
it becomes the connection's active exchange it asks `dispatch` whether the proxy answers
itself, picks a target and registers as in flight in the same step, takes a pooled
upstream connection or has an `Opening` open one, writes the request head once,
streams the body (buffering only while the upstream connection is being opened, with
the client paused), and relays the response the upstream connection parses. It ends
exactly once (`_finish`), which unregisters it, counts it, logs it and lets the client
connection go on.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from agent.proxy import pages
from agent.proxy.dispatch import Answer, dispatch, error
from agent.proxy.held import Held, encode_chunk
from agent.proxy.interfaces import PAUSE_PENDING, PAUSE_UPSTREAM
from agent.proxy.opening import Opening
from agent.proxy.response_head import client_lines, client_response_head
from agent.proxy.routes import Route, Tally, Target
from agent.proxy.tunnel import Tunnel

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.interfaces import ClientSide, UpstreamSide
    from agent.proxy.request_head import RequestHead
    from agent.proxy.response_head import ResponseHead

log = logging.getLogger(__name__)

# Phases.
ROUTING, CONNECTING, SENDING, WAITING, STREAMING, DONE = range(6)
_PENDING_LIMIT = 256 * 1024  # request body buffered while the upstream connection opens
_HELD_LIMIT = 64 * 1024  # bytes after an Upgrade head, held until the upstream's answer
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


class Exchange:
    """One request/response. Fields most exchanges never change are class attributes,
    so creating one (on every request's path) assigns only what differs."""

    route: Route | None = None
    tally: Tally | None = None
    target: Target | None = None
    upstream: UpstreamSide | None = None
    phase = ROUTING
    request_id = b"-"
    upstream_label = "-"
    pending: Held | None = None  # body bytes waiting for the upstream connection
    body_bytes = 0
    max_body = 0
    status = 0
    bytes_out = 0
    body_sent = False  # some request body already went upstream (no retry)
    opening: Opening | None = None  # the upstream connection being opened
    raw_upgrade = False
    held: Held | None = None  # bytes after an Upgrade head: never sent before a 101

    def __init__(self, ctx: Context, client: ClientSide, head: RequestHead, started: float) -> None:
        self.ctx = ctx
        self.client = client
        self.head = head
        self.started = started
        self.keep_alive = head.keep_alive
        # A request without a body is complete with its head (llhttp says so right after).
        self.request_complete = not head.has_body and head.upgrade is None

    # deciding ----------------------------------------------------------------------------

    def begin(self) -> None:
        """Become the active exchange: answer locally or start forwarding."""
        client = self.client
        head = self.head
        keep_alive = self.keep_alive and not self.ctx.stopping
        decision = dispatch(self.ctx, head, client.tls, client.sni, keep_alive, self.request_complete)
        if isinstance(decision, Answer):
            if decision.route is not None:
                self.route, self.tally = decision.route, decision.route.tally
            self.respond_local(decision.status, decision.response)
            return
        self.route = route = decision
        self.tally = route.tally
        self.max_body = route.options.max_body_bytes
        target = route.pick(self.started)
        if target is None:
            self.respond_error(503)
            return
        self.request_id = head.request_id or self.ctx.next_request_id()
        # In flight to `target`, for the target and the route (`_finish` undoes it).
        self.target = target
        self.upstream_label = target.label
        target.begin(self)
        route.tally.in_flight += 1
        if head.expect_continue and head.has_body:
            client.transport.write(pages.CONTINUE)
        conn = target.take_idle()
        self.attach(conn) if conn is not None else self._connect(target)

    # upstream connection ---------------------------------------------------------------

    def _connect(self, target: Target) -> None:
        self.phase = CONNECTING
        self.client.arm(self.ctx.settings.upstream_connect_timeout)
        self._opening().start(target)

    def _opening(self) -> Opening:
        if self.opening is None:
            assert self.route is not None
            self.opening = Opening(self.ctx, self, self.route)
        return self.opening

    def waits_for(self, target: Target) -> bool:
        return self.phase == CONNECTING and self.target is target

    def opened(self, conn: UpstreamSide, target: Target) -> bool:
        """A connection to `target` is open; False when this exchange no longer wants it."""
        if not self.waits_for(target):
            return False
        self.attach(conn)
        return True

    def retarget(self, target: Target) -> None:
        """The connect failed: in flight to `target` instead, connecting to it."""
        assert self.target is not None
        self.target.end(self)  # the route's count of requests in flight stays as it is
        self.target, self.upstream_label = target, target.label
        target.begin(self)
        self._connect(target)

    def attach(self, conn: UpstreamSide) -> None:
        """Send the request on `conn` (fresh or pooled)."""
        self.upstream = conn
        conn.start_response(self, self.head.method == b"HEAD", self.head.version == "1.0")
        client = self.client
        ctx = self.ctx
        head_bytes = client.upstream_head(self.head, self.request_id)
        transport = conn.transport
        if self.pending is not None:
            pending, self.pending = self.pending.pieces, None
            self.body_sent = True
            if self.head.chunked:
                pending = [encode_chunk(p) for p in pending]
            transport.writelines([head_bytes, *pending])
            client.resume(PAUSE_PENDING)
        else:
            transport.write(head_bytes)
        if self.raw_upgrade:
            self.phase = WAITING
        elif self.request_complete:
            if self.head.chunked:
                transport.write(b"0\r\n\r\n")
            self.phase = WAITING
        else:
            self.phase = SENDING
        client.arm(
            ctx.settings.upstream_response_timeout
            if self.phase == WAITING
            else ctx.settings.request_body_timeout
        )

    # request body from the client ------------------------------------------------------

    def body(self, data: bytes) -> None:
        if self.phase == DONE:
            return
        size = len(data)
        self.body_bytes += size
        if self.body_bytes > self.max_body:
            self.fail(413)
            return
        assert self.tally is not None
        self.tally.bytes_in += size
        conn = self.upstream
        client = self.client
        if conn is not None and self.phase != CONNECTING:
            self.body_sent = True
            conn.transport.write(encode_chunk(data) if self.head.chunked else data)
            if self.phase == SENDING:
                client.arm(self.ctx.settings.request_body_timeout)
        else:
            self._hold(data)

    def _hold(self, data: bytes) -> None:
        """Keep body bytes until the upstream connection is open (client paused past a limit)."""
        if self.pending is None:
            self.pending = Held()
        if self.pending.add(data) > _PENDING_LIMIT:
            self.client.pause(PAUSE_PENDING)

    def raw(self, data: bytes) -> None:
        """Bytes after an Upgrade request head: held (bounded) until the upstream answers.

        Only a 101 makes them the upgraded stream (`take_held`, by the tunnel). On any
        other answer the client connection parses them as its next request: written to
        the app before, they would reach it as a request the proxy never saw.
        """
        self.raw_upgrade = True
        if self.phase == DONE:
            return
        if self.held is None:
            self.held = Held()
        if self.held.add(data) > _HELD_LIMIT:
            self.held = None
            self.fail(400)

    def take_held(self) -> bytes:
        """The bytes held after an Upgrade head (now the exchange's no more)."""
        held, self.held = self.held, None
        return b"".join(held.pieces) if held is not None else b""

    def body_end(self) -> None:
        self.request_complete = True
        if self.phase == SENDING:
            assert self.upstream is not None
            if self.head.chunked:
                self.upstream.transport.write(b"0\r\n\r\n")
            self.phase = WAITING
            self.client.arm(self.ctx.settings.upstream_response_timeout)

    # response from the upstream --------------------------------------------------------

    def response_head(self, head: ResponseHead) -> bytes:
        """The lines the proxy adds to the upstream's `head`; the exchange now streams."""
        self.phase = STREAMING
        self.status = head.status
        route = self.route
        hsts = self.client.tls and route is not None and route.options.hsts
        wanted = self.keep_alive and self.request_complete and not self.ctx.stopping
        self.keep_alive, extra = client_lines(head, wanted, self.head.version == "1.0", hsts)
        return extra

    def interim(self, head: ResponseHead) -> None:
        """A 1xx response: forward it to HTTP/1.1 clients, then wait for the real one."""
        if self.head.version == "1.1" and head.status != 100:
            self.write(client_response_head(head, b""))

    def write(self, data: bytes | memoryview) -> None:
        size = len(data)
        self.bytes_out += size
        self.client.transport.write(data)

    def response_end(self) -> None:
        """The upstream's response is complete (the upstream connection is released)."""
        self.upstream = None
        if not self.request_complete:
            self.keep_alive = False
        self._finish()

    def upstream_failed(self, status: int, reason: str) -> None:
        """The upstream connection broke or answered garbage."""
        if self.phase == DONE:
            return
        assert self.tally is not None and self.route is not None
        self.tally.upstream_errors += 1
        log.warning(
            "upstream failed route=%s upstream=%s status=%d reason=%s",
            self.route.name, self.target.label if self.target else "-", status, reason,
        )  # fmt: skip
        self.upstream = None
        self.fail(status)

    def retry_fresh(self) -> bool:
        """A reused pooled connection died before answering: try a new one, if safe."""
        target = self.target
        if not self._resendable() or self.raw_upgrade or target is None or target.draining:
            return False
        self.upstream = None
        self._connect(target)
        return True

    def retry_elsewhere(self) -> bool:
        """A fresh connection closed before any answer: the upstream is failing. An
        idempotent request none of whose body left goes to another upstream."""
        if not self._resendable() or self.head.has_body or self.head.method not in _IDEMPOTENT:
            return False
        assert self.target is not None
        self.upstream = None
        reset = ConnectionResetError(errno.ECONNRESET, "closed before answering")
        self._opening().failed(self.target, reset)
        return True

    def _resendable(self) -> bool:
        """Sent (or being sent) with no body byte gone yet: it can go out again whole."""
        return (
            self.phase in (SENDING, WAITING)
            and not self.body_sent
            and (self.request_complete or not self.head.has_body)
        )

    def switch_protocols(self, conn: UpstreamSide, client_head: bytes) -> Tunnel:
        """The upstream answered 101: from now on, bytes flow both ways untouched."""
        assert self.target is not None
        self.write(client_head)
        tunnel = Tunnel(self.ctx, self.client, conn, self.target)
        early = self.take_held()
        self.upstream = None
        self.keep_alive = False
        self._finish(tunnel=True)
        self.client.become_tunnel(tunnel)
        if early:
            tunnel.from_client(early)
        return tunnel

    def upstream_full(self, full: bool) -> None:
        """The upstream connection's writes back up (or drained): pause the client's reads."""
        (self.client.pause if full else self.client.resume)(PAUSE_UPSTREAM)

    def body_arriving(self) -> None:
        """Response body bytes came: the upstream gets a new read deadline."""
        self.client.arm(self.ctx.settings.upstream_read_timeout)

    # ending ----------------------------------------------------------------------------

    def respond_error(self, status: int) -> None:
        close = not self.keep_alive or not self.request_complete
        self.respond_local(status, error(status, close).response)

    def respond_local(self, status: int, response: bytes) -> None:
        """Write a response the proxy made (as to GET); to HEAD, its head alone."""
        self.status = status
        end = response.find(b"\r\n\r\n") + 4
        if b"\r\nConnection: close\r\n" in response[: end - 2]:
            self.keep_alive = False
        self.write(response[:end] if self.head.method == b"HEAD" else response)
        self._finish()

    def fail(self, status: int) -> None:
        """End with an error status; if the response already started, cut the connection."""
        if self.phase == DONE:
            return
        self._abandon()
        if self.phase == STREAMING:
            self.keep_alive = False
            self.client.abort_after_exchange()
            self._finish()
        else:
            self.keep_alive = False
            self.respond_error(status)

    def client_gone(self) -> None:
        if self.phase == DONE:
            return
        if self.status == 0:
            self.status = 499  # nginx's "client closed request"
        self._abandon()
        self.keep_alive = False
        self._finish(notify=False)

    def _abandon(self) -> None:
        """Give up the upstream side mid-way: the connection (never reused) or its opening."""
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.abandon()
        if self.opening is not None:
            self.opening.cancel()

    def _finish(self, *, notify: bool = True, tunnel: bool = False) -> None:
        self.phase = DONE
        client = self.client
        tally = self.tally
        target = self.target
        if target is not None:  # no longer in flight (see `begin`)
            self.target = None
            target.end(self)
            assert tally is not None
            tally.in_flight -= 1
        if tally is not None:
            tally.by_class[self.status // 100] += 1
            tally.bytes_out += self.bytes_out
        access = self.ctx.access_log
        if access is not None:
            head = self.head
            access.line(
                head.host, head.method, head.target, self.status, self.bytes_out,
                self.ctx.loop.time() - self.started, client.peer_ip, self.upstream_label,
                self.request_id,
            )  # fmt: skip
        if notify:
            client.exchange_done(self, tunnel)

    # deadlines -------------------------------------------------------------------------

    def on_deadline(self) -> None:
        """Its wait is over: 408 for a stalled request body, else 504 (or a cut stream)."""
        if self.phase in (CONNECTING, WAITING) and self.tally is not None:
            self.tally.upstream_errors += 1
        self.fail(408 if self.phase == SENDING else 504)
