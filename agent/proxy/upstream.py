"""A keep-alive connection to one upstream: reads responses and relays them to the client.

The connection finds the end of the response head (one `find`), has it parsed by
`response_head`, writes the client's head together with the first body bytes in one
call, then forwards body reads as they come, counting Content-Length or walking the
chunk framing to know where the response ends. At the end it goes back to its target's
pool (or closes, if either side cannot keep it). Writing to a client that does not read
pauses this connection's reads (backpressure), and the exchange resumes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from agent.proxy.chunked import ChunkedError, ChunkedScanner
from agent.proxy.response_head import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BadResponse,
    client_response_head,
    parse_response_head,
)
from agent.proxy.routes import Target

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.interfaces import ExchangeSide, TunnelSide

log = logging.getLogger(__name__)

_HEAD, _BODY, _IDLE = range(3)
_COALESCE = 16 * 1024  # head + first body bytes under this are joined into one write


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "buf",
        "closed",
        "ctx",
        "dechunk",
        "exchange",
        "framing",
        "got_bytes",
        "head_request",
        "idle_since",
        "paused",
        "remaining",
        "reusable",
        "scanner",
        "served",
        "state",
        "target",
        "transport",
        "tunnel",
    )  # fmt: skip

    def __init__(self, ctx: Context, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set at once
        self.exchange: ExchangeSide | None = None
        self.tunnel: TunnelSide | None = None
        self.state = _IDLE
        self.buf = b""
        self.framing = NO_BODY
        self.remaining = 0
        self.scanner: ChunkedScanner | None = None
        self.reusable = True
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.served = 0  # responses read on this connection (>0: it came from the pool)
        self.got_bytes = False
        self.head_request = False
        self.dechunk = False

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.close()
            return
        exchange, self.exchange = self.exchange, None
        if exchange is None:
            return
        if self.state == _BODY and self.framing == UNTIL_CLOSE:
            exchange.response_end()
        elif not self.got_bytes and (
            exchange.retry_fresh() if self.served else exchange.retry_elsewhere()
        ):
            return  # a pooled connection gone stale, or an instance failing: sent again
        else:
            reason = "closed before the response ended" if self.got_bytes else "closed early"
            exchange.upstream_failed(502, f"{reason}: {exc}" if exc else reason)

    def eof_received(self) -> bool:
        return False  # close; connection_lost settles the exchange

    def pause_writing(self) -> None:
        exchange = self.exchange
        if self.tunnel is not None:
            self.tunnel.upstream_full(True)
        elif exchange is not None:
            exchange.upstream_full(True)

    def resume_writing(self) -> None:
        exchange = self.exchange
        if self.tunnel is not None:
            self.tunnel.upstream_full(False)
        elif exchange is not None:
            exchange.upstream_full(False)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes nobody asked for: this connection is out of step
            return
        self.got_bytes = True
        if self.state == _HEAD:
            self._read_head(exchange, data)
        else:
            self._read_body(exchange, data)

    # the exchange's side ---------------------------------------------------------------

    def usable(self) -> bool:
        return not self.closed and self.reusable and not self.transport.is_closing()

    def start_response(self, exchange: ExchangeSide, head_request: bool, dechunk: bool) -> None:
        """Read the response to `exchange`'s request (just written on this connection)."""
        self.exchange = exchange
        self.state = _HEAD
        self.buf = b""
        self.got_bytes = False
        self.head_request = head_request
        self.dechunk = dechunk
        self.scanner = None

    def pause_reading(self) -> None:
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def park(self) -> None:
        """Back to its target's pool, or closed when the pool cannot take it."""
        ctx = self.ctx
        if ctx.stopping or not self.target.park(self, ctx.loop.time(), ctx.settings.pool_size):
            self.close()

    def abandon(self) -> None:
        """The exchange gave up on this connection mid-request: it cannot be reused."""
        self.exchange = None
        self.close()

    def close(self) -> None:
        self.reusable = False
        if not self.closed:
            self.closed = True
            self.exchange = None
            self.transport.close()

    # reading ---------------------------------------------------------------------------

    def _read_head(self, exchange: ExchangeSide, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.ctx.settings.max_response_head_bytes:
                self._broken(exchange, "response head too large")
            else:
                self.buf = buf
            return
        self.buf, end = b"", end + 4
        try:
            head = parse_response_head(
                buf[:end], head_request=self.head_request, dechunk=self.dechunk,
                memo=self.ctx.head_memo,
            )  # fmt: skip
        except BadResponse as exc:
            self._broken(exchange, str(exc))
            return
        rest = buf[end:] if end < len(buf) else b""
        status = head.status
        if status < 200 and status != 101:  # interim (100, 103): forwarded, then the real one
            exchange.interim(head)
            if rest:
                self._read_head(exchange, rest)
            return
        extra = exchange.response_head(head)
        if status == 101:
            self._tunnel(exchange, client_response_head(head, extra), rest)
            return
        if not head.keep_alive or not exchange.request_complete:
            # An answer that came before the whole request went out leaves the app at an
            # unknown point of the body: what it reads next may be parsed as a request.
            self.reusable = False
        self.state = _BODY
        self.framing = framing = head.framing
        if framing == LENGTH:
            length = self.remaining = head.length
            if len(rest) <= length and len(rest) < _COALESCE:
                # The common small response: head and body in one write.
                exchange.write(b"".join((head.reason_line, head.lines, extra, b"\r\n", rest)))
                self.remaining = length - len(rest)
                if self.remaining == 0:
                    self._done(exchange)
                else:
                    self._refresh(exchange)
                return
        elif framing == CHUNKED:
            self.scanner = ChunkedScanner()
        client_head = client_response_head(head, extra)
        if framing == NO_BODY:
            if rest:
                self.reusable = False
            exchange.write(client_head)
            self._done(exchange)
            return
        exchange.write(client_head)
        if rest:
            self._read_body(exchange, rest)
        else:
            self._refresh(exchange)

    def _read_body(self, exchange: ExchangeSide, data: bytes) -> None:
        framing = self.framing
        if framing == LENGTH:
            size = len(data)
            remaining = self.remaining
            if size < remaining:
                self.remaining = remaining - size
                exchange.write(data)
                self._refresh(exchange)
                return
            if size > remaining:
                self.reusable = False
                data = data[:remaining]
            exchange.write(data)
            self._done(exchange)
        elif framing == CHUNKED:
            scanner = self.scanner
            assert scanner is not None
            pieces: list[memoryview] | None = [] if self.dechunk else None
            try:
                end = scanner.feed(data, pieces)
            except ChunkedError as exc:
                self._broken(exchange, str(exc))
                return
            if end >= 0 and end < len(data):
                self.reusable = False
                data = data[:end]
            if pieces is None:
                exchange.write(data)
            else:
                for piece in pieces:
                    exchange.write(piece)
            if end >= 0:
                self._done(exchange)
            else:
                self._refresh(exchange)
        elif framing == UNTIL_CLOSE:
            exchange.write(data)
            self._refresh(exchange)
        else:
            self.reusable = False  # body bytes on a bodiless response

    def _refresh(self, exchange: ExchangeSide) -> None:
        exchange.body_arriving()

    def _done(self, exchange: ExchangeSide) -> None:
        self.state = _IDLE
        self.exchange = None
        self.served += 1
        if self.paused:
            self.resume_reading()
        ctx = self.ctx
        pooled = (
            self.reusable and exchange.request_complete and not self.closed and not ctx.stopping
            and self.target.park(self, ctx.loop.time(), ctx.settings.pool_size)
        )  # fmt: skip
        if not pooled:
            self.close()
        exchange.response_end()

    def _broken(self, exchange: ExchangeSide, reason: str) -> None:
        self.exchange = None
        self.close()
        exchange.upstream_failed(502, reason)

    def _tunnel(self, exchange: ExchangeSide, client_head: bytes, rest: bytes) -> None:
        self.exchange = None
        self.reusable = False
        tunnel = self.tunnel = exchange.switch_protocols(self, client_head)
        if rest:
            tunnel.from_upstream(rest)
