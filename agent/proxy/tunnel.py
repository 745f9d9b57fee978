"""An upgraded connection (WebSocket and any other `Upgrade`): bytes both ways, untouched.

After the upstream's 101 the client connection and the upstream connection hand their
reads to the tunnel, which writes them to the other side. A side whose writes back up
pauses the other side's reads. Either side closing closes both. A drain closes tunnels
on the old upstream at once, so clients reconnect (and land on the new one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.proxy.interfaces import PAUSE_UPSTREAM

if TYPE_CHECKING:
    from agent.proxy.context import Context
    from agent.proxy.interfaces import ClientSide, UpstreamSide
    from agent.proxy.routes import Target


class Tunnel:
    __slots__ = ("client", "closed", "ctx", "target", "upstream")

    def __init__(
        self, ctx: Context, client: ClientSide, upstream: UpstreamSide, target: Target
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.upstream = upstream
        self.target = target
        self.closed = False
        target.tunnel_opened(self)
        self._touch()

    def _touch(self) -> None:
        self.client.arm(self.ctx.settings.tunnel_idle_timeout)

    def from_client(self, data: bytes) -> None:
        if not self.closed:
            self.upstream.transport.write(data)
            self._touch()

    def from_upstream(self, data: bytes) -> None:
        if not self.closed:
            self.client.transport.write(data)
            self._touch()

    def upstream_full(self, full: bool) -> None:
        if full:
            self.client.pause(PAUSE_UPSTREAM)
        else:
            self.client.resume(PAUSE_UPSTREAM)

    def client_full(self, full: bool) -> None:
        if full:
            self.upstream.pause_reading()
        else:
            self.upstream.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.target.tunnel_closed(self)
        self.upstream.close()
        self.client.close()
