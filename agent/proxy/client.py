"""A client connection (plain or TLS): requests in, responses out, in order.

The connection feeds its reads to a `RequestReader`, turns each head into an `Exchange`
and runs them one at a time (pipelined requests wait, with reading paused). It owns the
connection-level rules: the open-connection cap, the head timeout (slowloris), the
keep-alive idle timeout, backpressure from the upstream side, answering a malformed
request and closing, and the lingering close that lets the client read that answer
instead of a reset.

`ClientConnection` is an `asyncio.BaseProtocol` with the `Protocol` methods
(`data_received`, `eof_received`): the event loop hands it each read as bytes (over TLS,
`tls_listener.TlsClientConnection` takes them the `BufferedProtocol` way).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

from agent.proxy import pages
from agent.proxy.exchange import DONE, Exchange
from agent.proxy.interfaces import PAUSE_QUEUE
from agent.proxy.request_head import (
    Rejected,
    RequestHead,
    RequestReader,
    StopReading,
    peer_lines,
    trusted_forwarded_lines,
    upstream_request_head,
)
from agent.proxy.sockets import peer_ip

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.interfaces import ExchangeSide, TunnelSide

log = logging.getLogger(__name__)

_NEVER = float("inf")
_MAX_PIPELINED = 16  # queued requests behind the active one


class ClientConnection(asyncio.BaseProtocol):
    __slots__ = (
        "active",
        "closed",
        "ctx",
        "deadline",
        "eof",
        "forwarded",
        "incoming",
        "latest",
        "lingering",
        "paused_for",
        "peer_ip",
        "pending_reject",
        "queue",
        "raw_exchange",
        "read_no_more",
        "reader",
        "scheme",
        "sni",
        "tls",
        "transport",
        "trusted",
        "tunnel",
        "write_paused",
    )  # fmt: skip

    def __init__(self, ctx: Context, tls: bool, sni: str = "") -> None:
        self.ctx = ctx
        self.tls = tls
        self.sni = sni  # over TLS: the server name the handshake was for
        self.scheme = b"https" if tls else b"http"
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set at once
        self.reader: RequestReader = None  # type: ignore[assignment]
        self.peer_ip = "-"
        self.trusted = False
        self.forwarded = b""
        self.active: Exchange | None = None  # the exchange whose response is being sent
        self.incoming: Exchange | None = None  # the exchange whose body is being read
        self.latest: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.raw_exchange: Exchange | None = None
        self.tunnel: TunnelSide | None = None
        self.deadline = _NEVER
        self.closed = False
        self.lingering = False
        self.eof = False
        self.read_no_more = False  # too many pipelined requests: finish the queue, then close
        self.paused_for = 0
        self.write_paused = False
        self.pending_reject = 0

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        ctx = self.ctx
        transport = self.transport
        settings = ctx.settings
        # Accepted while the proxy stops (its listeners just closed): served, then closed.
        if len(ctx.clients) >= settings.max_connections:
            self.closed = True
            transport.write(pages.error_response(503, True))
            transport.close()
            return
        ctx.clients.add(self)
        self.peer_ip = peer_ip(transport.get_extra_info("peername"))
        self.trusted = ctx.is_trusted(self.peer_ip)
        if not self.trusted:
            self.forwarded = peer_lines(self.peer_ip, self.scheme)
        self.reader = RequestReader(
            self,
            trusted=self.trusted,
            max_request_line=settings.max_request_line_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            host_cache=ctx.host_cache,
        )
        self.arm(settings.request_head_timeout)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.lingering or self.closed or self.read_no_more:
            return
        if self.raw_exchange is not None:
            self.raw_exchange.raw(data)
            return
        reader = self.reader
        idle = self.active is None and not reader.in_head
        try:
            offset = reader.feed(data)
        except Rejected as rejected:
            self._reject(rejected.status)
            return
        except StopReading:
            return
        if idle and reader.in_head and self.active is None:
            # A request head began and is not complete: its clock starts (slowloris). A
            # head that completed in this read already set the deadline of its exchange.
            self.arm(self.ctx.settings.request_head_timeout)
        if offset is not None:
            self._upgrade(data[offset:])

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.tunnel is not None:
            self.tunnel.close()
            return None
        if (
            self.lingering
            or (self.active is None and not self.queue)
            or self.incoming is not None  # a request body that can never be completed
            or self.reader.in_head
        ):
            self.close()
            return None
        return True  # half-closed: still answer what was asked

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = _NEVER
        self.ctx.clients.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
        active, self.active = self.active, None
        if active is not None:
            active.client_gone()
        while self.queue:
            self.queue.popleft().client_gone()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.client_full(True)
            return
        active = self.active
        if active is not None and active.upstream is not None:
            active.upstream.pause_reading()
            self.arm(self.ctx.settings.send_timeout)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.client_full(False)
            return
        active = self.active
        if active is not None and active.upstream is not None:
            active.upstream.resume_reading()

    # RequestSink -----------------------------------------------------------------------

    def request_head(self, head: RequestHead) -> None:
        if self.closed or self.lingering:
            raise StopReading()
        exchange = Exchange(self.ctx, self, head, self.ctx.loop.time())
        self.incoming = self.latest = exchange
        if self.active is None:
            self.active = exchange
            exchange.begin()
        else:
            self.queue.append(exchange)
            self.pause(PAUSE_QUEUE)
            if len(self.queue) >= _MAX_PIPELINED:
                # Answer what is queued, then close: a read full of tiny pipelined requests
                # must not turn into thousands of waiting exchanges.
                self.read_no_more = True
                raise StopReading()

    def request_body(self, data: bytes) -> None:
        exchange = self.incoming
        if exchange is not None:
            exchange.body(data)

    def request_end(self) -> None:
        exchange, self.incoming = self.incoming, None
        if exchange is not None and not exchange.request_complete:  # else: no body to end
            exchange.body_end()

    # the exchanges' side ---------------------------------------------------------------

    def upstream_head(self, head: RequestHead, request_id: bytes) -> bytes:
        """The request head for the upstream, forwarding headers included."""
        if self.trusted:
            forwarded = trusted_forwarded_lines(head, request_id, self.peer_ip, self.scheme)
        else:  # the peer's own lines, rendered once per connection (every request's path)
            forwarded = b"".join(
                (self.forwarded, b"X-Forwarded-Host: ", head.host_header,
                 b"\r\nX-Request-ID: ", request_id, b"\r\n")
            )  # fmt: skip
        return upstream_request_head(head, forwarded)

    def exchange_done(self, exchange: ExchangeSide, tunnel: bool) -> None:
        if exchange is not self.active:
            return
        self.active = None
        if tunnel or self.closed:
            return
        if self.pending_reject:
            self._answer_and_linger(self.pending_reject)
            return
        # A response that promised keep-alive as the proxy began stopping leaves the
        # connection idle, for one more request, until the idle grace is over.
        if not exchange.keep_alive or self.eof or self.read_no_more or self.ctx.closing_idle:
            if exchange.request_complete and not self.queue:
                self.close()
            else:
                self._linger()
            return
        if self.queue:
            following = self.queue.popleft()
            self.active = following
            if not self.queue:
                self.resume(PAUSE_QUEUE)
            following.begin()
            return
        ctx = self.ctx
        settings = ctx.settings
        timeout = (
            settings.request_head_timeout if self.reader.in_head else settings.keepalive_timeout
        )
        self.deadline = ctx.loop.time() + timeout  # `arm`, inline on every request's path
        if exchange is self.raw_exchange:
            # The upgrade was refused: what the client sent after its head is read as
            # what it is, the next request (parsed, routed and forwarded like any other).
            self.raw_exchange = None
            held = exchange.take_held()
            if held:
                self.data_received(held)

    def pause(self, reason: int) -> None:
        if not self.paused_for and not self.closed:
            self.transport.pause_reading()
        self.paused_for |= reason

    def resume(self, reason: int) -> None:
        if self.paused_for & reason:
            self.paused_for &= ~reason
            if not self.paused_for and not self.closed:
                self.transport.resume_reading()

    def become_tunnel(self, tunnel: TunnelSide) -> None:
        self.tunnel = tunnel
        self.raw_exchange = None
        if self.eof:  # the client already hung up its side
            tunnel.close()
            return
        if self.paused_for:
            self.paused_for = 0
            self.transport.resume_reading()

    def abort_after_exchange(self) -> None:
        """The response was cut mid-way: the client must see the connection end."""
        self.closed = True
        if self.write_paused:
            self.transport.abort()
        else:
            self.transport.close()

    def arm(self, seconds: float) -> None:
        """The one deadline of this connection: the sweeper calls `on_deadline` after it."""
        self.deadline = self.ctx.loop.time() + seconds

    # ending ----------------------------------------------------------------------------

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def shut_down(self, *, close_idle: bool = True) -> None:
        """The proxy is stopping: close now if idle (unless `close_idle` is False: its
        next request is answered, with `Connection: close`), else after the current
        response."""
        if self.tunnel is not None:
            self.tunnel.close()
        elif close_idle and self.active is None and not self.reader.in_head:
            self.close()

    def _upgrade(self, rest: bytes) -> None:
        exchange = self.latest
        if exchange is None or exchange.head.upgrade is None:
            self._reject(400)
            return
        if exchange.phase == DONE:
            # Already answered by the proxy itself (404, a redirect): no upgrade will come,
            # what follows is the next request.
            if rest and not (self.closed or self.lingering):
                self.data_received(rest)
            return
        exchange.raw_upgrade = True
        self.raw_exchange = exchange
        if rest:
            exchange.raw(rest)

    def _reject(self, status: int) -> None:
        active = self.active
        if active is not None and active is self.incoming:
            # The body of the request being forwarded is broken: that request fails.
            self.incoming = None
            active.keep_alive = False
            self.pending_reject = 0
            active.fail(status)
            if not self.closed and not self.lingering:
                self._linger()
            return
        if active is not None:
            # Answer in order: after the response being sent.
            self.pending_reject = status
            self.pause(PAUSE_QUEUE)
            return
        self._answer_and_linger(status)

    def _answer_and_linger(self, status: int) -> None:
        log.debug("request rejected client=%s status=%d", self.peer_ip, status)
        response = pages.error_response(status, True)
        self.transport.write(pages.head_only(response) if self.reader.head_request() else response)
        self._linger()

    def _linger(self) -> None:
        """Close without losing the answer to a reset: send FIN, discard input, then close."""
        self.lingering = True
        self.raw_exchange = None
        if self.paused_for:
            self.paused_for = 0
            self.transport.resume_reading()
        if not self.transport.can_write_eof():  # TLS: no half-close; flush and close
            self.close()
            return
        self.transport.write_eof()
        self.arm(self.ctx.settings.linger_timeout)

    def on_deadline(self, now: float) -> None:
        self.deadline = _NEVER
        if self.tunnel is not None:
            self.tunnel.close()
        elif self.lingering:
            self.closed = True
            self.transport.abort()
        elif self.active is not None:
            self.active.on_deadline()
        elif self.reader.in_head:
            self._answer_and_linger(408)
        else:
            self.close()
