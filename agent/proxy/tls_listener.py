"""The HTTPS listener: accept, peek at the ClientHello's SNI, then hand over to TLS.

Each accepted socket is peeked at (MSG_PEEK, nothing consumed) until its ClientHello is
complete. A name the certificate store holds gets that host's TLS context and the socket
goes to the event loop's TLS transport with a `ClientConnection` on top; an unknown name,
or no name, gets a fatal TLS alert written here and the socket closed. So no handshake
is ever answered with another site's certificate, and the client learns why.

`TlsClientConnection` takes its reads the `BufferedProtocol` way (uvloop only does so for
a protocol that is not an `asyncio.Protocol`): uvloop's TLS layer then decrypts into a
buffer the context lends, where for a `data_received` protocol it allocates a 256 KiB
bytes object per read (an mmap, mremap and munmap per request, measured).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.proxy.certs import CertificateStore
from agent.proxy.client import ClientConnection
from agent.proxy.client_hello import (
    ALERT_HANDSHAKE_FAILURE,
    ALERT_UNRECOGNIZED_NAME,
    MAX_HELLO,
    NotTLS,
    server_name,
)
from agent.proxy.settings import ProxySettings
from agent.proxy.sockets import listening_socket

if TYPE_CHECKING:
    from agent.proxy.context import Context

log = logging.getLogger(__name__)

_PEEK_PAUSE = 0.005  # between peeks at a ClientHello that arrives in pieces


class TlsListener:
    def __init__(
        self,
        settings: ProxySettings,
        certificates: CertificateStore,
        protocol_factory: Callable[[str], asyncio.BaseProtocol],  # called with the SNI name
        open_connections: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._certificates = certificates
        self._factory = protocol_factory
        self._open_connections = open_connections
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._greeting: set[asyncio.Task[None]] = set()

    async def start(
        self, host: str, port: int, *, accepting: bool = True, sock: socket.socket | None = None
    ) -> int:
        """Bind and listen (or serve on `sock`, already listening); accept at once unless
        `accepting` is False (see `accept`)."""
        if sock is None:
            sock = listening_socket(host, port, self._settings.backlog)
        sock.setblocking(False)
        self._sock = sock
        if accepting:
            self.accept()
        return int(sock.getsockname()[1])

    def accept(self) -> None:
        """Start accepting connections (those already waiting in the backlog first)."""
        if self._accepting is None and self._sock is not None:
            self._accepting = asyncio.get_running_loop().create_task(self._accept())

    async def close(self, grace: float = 0.0) -> None:
        """Stop accepting; connections already accepted get `grace` seconds to finish
        their ClientHello and handshake (then they are served), the rest are closed."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
            self._accepting = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._greeting and grace > 0:
            await asyncio.wait(list(self._greeting), timeout=grace)
        greeting = list(self._greeting)
        for task in greeting:
            task.cancel()
        await asyncio.gather(*greeting, return_exceptions=True)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn = await _accepted(loop, self._sock)
            except OSError as exc:  # EMFILE and friends: back off, keep listening
                log.warning("https accept failed error=%s", exc)
                await asyncio.sleep(0.1)
                continue
            if len(self._greeting) + self._open_connections() >= self._settings.max_connections:
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the HTTP side has
            task = loop.create_task(self._greet(conn))
            self._greeting.add(task)
            task.add_done_callback(self._greeting.discard)

    async def _greet(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._settings.tls_handshake_timeout
        handed_over = False
        try:
            name = await asyncio.wait_for(_peek_server_name(loop, conn), timeout)
            context = self._certificates.context_for(name) if name else None
            if context is None:
                conn.send(ALERT_HANDSHAKE_FAILURE if name is None else ALERT_UNRECOGNIZED_NAME)
                log.debug("tls refused server_name=%s", name)
                return
            handed_over = True
            sni = name or ""  # a context is only ever found for a name
            await loop.connect_accepted_socket(
                lambda: self._factory(sni), conn, ssl=context, ssl_handshake_timeout=timeout
            )
        except (TimeoutError, OSError, ssl.SSLError, NotTLS, EOFError) as exc:
            log.debug("tls handshake failed error=%s", exc)
        finally:
            if not handed_over:
                conn.close()


async def _accepted(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> socket.socket:
    """The next connection on `sock`. Cancelled (the listener closing) just after the
    accept completed, the connection it took is closed, never left to leak."""
    accepting = asyncio.ensure_future(loop.sock_accept(sock))
    try:
        conn, _ = await asyncio.shield(accepting)
    except asyncio.CancelledError:
        accepting.cancel()
        accepting.add_done_callback(_close_accepted)
        raise
    return conn


def _close_accepted(accepting: asyncio.Future[tuple[socket.socket, object]]) -> None:
    if not accepting.cancelled() and accepting.exception() is None:
        accepting.result()[0].close()


async def _peek_server_name(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> str | None:
    """Wait for a complete ClientHello on `conn` (without consuming it); its SNI name."""
    while True:
        await _readable(loop, conn)
        data = conn.recv(MAX_HELLO, socket.MSG_PEEK)
        if not data:
            raise EOFError("closed before a ClientHello")
        name = server_name(data)
        if name is not False:
            return name if isinstance(name, str) else None
        if len(data) >= MAX_HELLO:
            raise NotTLS("ClientHello too large")
        await asyncio.sleep(_PEEK_PAUSE)  # the same bytes stay readable: wait for more


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class TlsClientConnection(ClientConnection):
    """A client connection over TLS: reads arrive decrypted in the context's read buffer."""

    __slots__ = ()

    def __init__(self, ctx: Context, sni: str) -> None:
        super().__init__(ctx, True, sni)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.ctx.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # Copied out at once: the buffer is shared by every TLS connection of the proxy.
        self.data_received(self.ctx.read_buffer[:nbytes].tobytes())
