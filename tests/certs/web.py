"""Real sockets around the proxy for the end-to-end certificate tests.

`AppServer` is the app behind the proxy: HTTP/1.1 with keep-alive, answering
"app saw HOST" to every request. `get` is a client speaking HTTP or HTTPS (with SNI,
verifying against a given root) that reads one response and reports the certificate the
server presented.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from cryptography import x509


class AppServer:
    def __init__(self) -> None:
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> AppServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                host = ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"host":
                        host = value.strip().decode()
                self.requests += 1
                body = f"app saw {host}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    serial: str | None  # of the certificate the server presented (HTTPS)


def client_context(root_pem: bytes) -> ssl.SSLContext:
    """Verifies like a browser that trusts only `root_pem` (hostname checked)."""
    context = ssl.create_default_context(cadata=root_pem.decode())
    return context


async def get(port: int, host: str, path: str = "/", *, tls: ssl.SSLContext | None = None,
              timeout: float = 10.0) -> Response:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname=host if tls else None)
        try:
            serial = None
            if tls is not None:
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                         "\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(lines[0].split()[1]), headers, body, serial)
