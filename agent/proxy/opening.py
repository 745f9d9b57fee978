"""Opening an upstream connection for one exchange, failing over across its route.

An `Opening` connects to the target its exchange was given. A refused or reset connect
marks that target (passive health) and moves the exchange to the route's next target not
tried yet; with none left the exchange fails with 502 (504 for a timed-out connect). A
connect that succeeds brings a down target back and hands the connection to the
exchange, or to the target's pool when the exchange ended meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
from typing import TYPE_CHECKING, Protocol

from agent.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.interfaces import UpstreamSide
    from agent.proxy.routes import Route, Target


class OpeningSide(Protocol):
    """An exchange, as the opening of its upstream connection sees it."""

    def waits_for(self, target: Target) -> bool: ...

    def opened(self, conn: UpstreamSide, target: Target) -> bool: ...

    def retarget(self, target: Target) -> None: ...

    def fail(self, status: int) -> None: ...


class Opening:
    __slots__ = ("ctx", "exchange", "route", "task", "tried")

    def __init__(self, ctx: Context, exchange: OpeningSide, route: Route) -> None:
        self.ctx = ctx
        self.exchange = exchange
        self.route = route
        self.tried: tuple[Target, ...] = ()  # targets whose connect failed (not tried again)
        self.task: asyncio.Task[None] | None = None

    def start(self, target: Target) -> None:
        self.task = self.ctx.loop.create_task(self._open(target))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _open(self, target: Target) -> None:
        ctx = self.ctx
        upstream = target.upstream
        try:
            _, conn = await ctx.loop.create_connection(
                lambda: UpstreamConnection(ctx, target), upstream.host, upstream.port
            )
        except OSError as exc:
            self.task = None
            if self.exchange.waits_for(target):
                self.failed(target, exc)
            return
        self.task = None
        target.connected(self.route.name)
        if not self.exchange.opened(conn, target):
            conn.park()  # the exchange ended meanwhile; keep the connection

    def failed(self, target: Target, exc: OSError) -> None:
        """The connect to `target` was refused or reset: mark it, go on to another one."""
        route = self.route
        route.tally.upstream_errors += 1
        self.tried = (*self.tried, target)
        now = self.ctx.loop.time()
        target.connect_failed(route.name, exc, now, self.ctx.settings)
        following = route.pick(now, self.tried)
        if following is not None:
            self.exchange.retarget(following)
        else:
            self.exchange.fail(504 if exc.errno == errno.ETIMEDOUT else 502)
