"""A real HTTP/1.1 upstream for the proxy tests (asyncio streams + h11), on 127.0.0.1.

Paths:
  /hello               "hello from NAME"
  /headers             the request (method, target, headers) as JSON
  /echo                streams the request body back as it arrives (chunked)
  /bytes/N             N bytes, Content-Length framed
  /chunks/N/MS         N chunks of "data: i\\n\\n", MS milliseconds apart (SSE-like)
  /sleep/MS            answers after MS milliseconds
  /status/N            an empty response with that status
  /close               answers with Connection: close
  /drop                closes the connection without answering (RST)
  /ws                  101 Switching Protocols, then echoes bytes
  /hsts                answers with its own Strict-Transport-Security header
Every response carries `X-Served-By: NAME`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import h11


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.seen: list[tuple[str, dict[str, str]]] = []  # every request: target, headers
        self.connections = 0
        self.open_connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _next_event(conn, reader)
                if not isinstance(request, h11.Request):
                    break
                self.requests += 1
                self.seen.append(
                    (request.target.decode(), {k.decode().lower(): v.decode("latin-1")
                                               for k, v in request.headers})
                )  # fmt: skip
                keep = await self._handle(conn, request, reader, writer)
                if not keep or conn.our_state is not h11.DONE:
                    break
                await _drain_request(conn, reader)
                if conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()

    async def _handle(
        self, conn: h11.Connection, request: h11.Request,
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> bool:  # fmt: skip
        path = request.target.decode()
        parts = path.split("?")[0].strip("/").split("/")
        send = _sender(conn, writer)
        base = [(b"X-Served-By", self.name.encode())]
        if parts[0] == "hello":
            await send(
                h11.Response(
                    status_code=200,
                    headers=base
                    + [(b"Content-Length", str(len(f"hello from {self.name}")).encode())],
                )
            )
            await send(h11.Data(data=f"hello from {self.name}".encode()))
            await send(h11.EndOfMessage())
        elif parts[0] == "headers":
            body = json.dumps(
                {
                    "method": request.method.decode(),
                    "target": request.target.decode(),
                    "headers": [[k.decode(), v.decode("latin-1")] for k, v in request.headers],
                }
            ).encode()
            await send(
                h11.Response(
                    status_code=200,
                    headers=base
                    + [
                        (b"Content-Length", str(len(body)).encode()),
                        (b"Content-Type", b"application/json"),
                    ],
                )
            )
            await send(h11.Data(data=body))
            await send(h11.EndOfMessage())
        elif parts[0] == "echo":
            await send(
                h11.Response(status_code=200, headers=base + [(b"Transfer-Encoding", b"chunked")])
            )
            while True:
                event = await _next_event(conn, reader)
                if isinstance(event, h11.Data):
                    await send(h11.Data(data=bytes(event.data)))
                else:
                    break
            await send(h11.EndOfMessage())
        elif parts[0] == "bytes":
            size = int(parts[1])
            await send(
                h11.Response(
                    status_code=200, headers=base + [(b"Content-Length", str(size).encode())]
                )
            )
            block = b"x" * 65536
            left = size
            while left:
                piece = block[: min(left, len(block))]
                await send(h11.Data(data=piece))
                left -= len(piece)
            await send(h11.EndOfMessage())
        elif parts[0] == "chunks":
            count, delay = int(parts[1]), int(parts[2]) / 1000
            await send(
                h11.Response(
                    status_code=200,
                    headers=base
                    + [(b"Content-Type", b"text/event-stream"), (b"Transfer-Encoding", b"chunked")],
                )
            )
            for i in range(count):
                await send(h11.Data(data=b"data: %d\n\n" % i))
                await asyncio.sleep(delay)
            await send(h11.EndOfMessage())
        elif parts[0] == "sleep":
            await asyncio.sleep(int(parts[1]) / 1000)
            await send(h11.Response(status_code=200, headers=base + [(b"Content-Length", b"5")]))
            await send(h11.Data(data=b"slept"))
            await send(h11.EndOfMessage())
        elif parts[0] == "status":
            status = int(parts[1])
            headers = base if status in (204, 304) else base + [(b"Content-Length", b"0")]
            await send(h11.Response(status_code=status, headers=headers))
            await send(h11.EndOfMessage())
        elif parts[0] == "close":
            await send(
                h11.Response(
                    status_code=200,
                    headers=base + [(b"Content-Length", b"3"), (b"Connection", b"close")],
                )
            )
            await send(h11.Data(data=b"bye"))
            await send(h11.EndOfMessage())
            return False
        elif parts[0] == "drop":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif parts[0] == "ws":
            await send(
                h11.InformationalResponse(
                    status_code=101,
                    headers=base + [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
                )
            )
            data, _ = conn.trailing_data
            if data:
                writer.write(data)
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return False
                writer.write(chunk)
                await writer.drain()
        elif parts[0] == "hsts":
            await send(
                h11.Response(
                    status_code=200,
                    headers=base
                    + [(b"Content-Length", b"0"), (b"Strict-Transport-Security", b"max-age=60")],
                )
            )
            await send(h11.EndOfMessage())
        else:
            await send(h11.Response(status_code=404, headers=base + [(b"Content-Length", b"0")]))
            await send(h11.EndOfMessage())
        return True


def _sender(conn: h11.Connection, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
    async def send(event: h11.Event) -> None:
        data = conn.send(event)
        if data:
            writer.write(data)
            await writer.drain()

    return send


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            continue
        return event  # type: ignore[return-value]


async def _drain_request(conn: h11.Connection, reader: asyncio.StreamReader) -> None:
    while conn.their_state is h11.SEND_BODY:
        event = await _next_event(conn, reader)
        if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break


@asynccontextmanager
async def running_backend(name: str, port: int = 0) -> AsyncIterator[Backend]:
    backend = Backend(name)
    await backend.start(port)
    try:
        yield backend
    finally:
        await backend.stop()


async def _serve_forever(name: str, port: int) -> None:
    backend = Backend(name)
    await backend.start(port)
    print(f"listening {backend.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    import uvloop

    uvloop.run(_serve_forever(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
