"""A minimal HTTP-01 responder on a real socket, for unit-level tests against Pebble.

It answers `GET /.well-known/acme-challenge/TOKEN` from its token map and 404s the rest;
each connection serves one request. The end-to-end tests use the proxy's real HTTP port
instead; this one lets the manager be tested without the proxy in the way.
"""

from __future__ import annotations

import asyncio

PREFIX = "/.well-known/acme-challenge/"


class ChallengeServer:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    # The ChallengeResponder protocol.
    def set(self, token: str, key_authorization: str) -> None:
        self.tokens[token] = key_authorization

    def remove(self, token: str) -> None:
        self.tokens.pop(token, None)

    async def start(self, port: int = 0) -> ChallengeServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            path = parts[1] if len(parts) == 3 else ""
            self.requests.append(path)
            answer = self.tokens.get(path[len(PREFIX):]) if path.startswith(PREFIX) else None
            status, body = ("200 OK", answer.encode()) if answer else ("404 Not Found", b"")
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
