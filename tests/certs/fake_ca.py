"""A fake ACME server that refuses orders, for what Pebble cannot do.

Pebble enforces no rate limits, so the 429 / `rateLimited` answer (with Retry-After) of
Let's Encrypt is played by this server: it serves a directory, nonces and accounts like
an ACME server, and answers every newOrder with the problem document it was given. It
checks no signatures (the client side is what is under test). Plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets


class RefusingCA:
    def __init__(self, status: int, problem: dict[str, str], retry_after: str | None) -> None:
        self.status = status
        self.problem = problem
        self.retry_after = retry_after
        self.port = 0
        self.order_requests = 0
        self.account_requests = 0
        self._server: asyncio.Server | None = None

    @property
    def directory(self) -> str:
        return f"http://127.0.0.1:{self.port}/dir"

    async def start(self) -> RefusingCA:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        base = f"http://127.0.0.1:{self.port}"
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        headers = {"Replay-Nonce": nonce, "Content-Type": "application/json"}
        if path == "/dir":
            body = {"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct",
                    "newOrder": f"{base}/order", "revokeCert": f"{base}/revoke",
                    "keyChange": f"{base}/key"}
            return 200, headers, json.dumps(body).encode()
        if path == "/nonce":
            return 200, headers, b""
        if path == "/acct" and method == "POST":
            self.account_requests += 1
            headers["Location"] = f"{base}/acct/1"
            return 201, headers, json.dumps({"status": "valid", "contact": []}).encode()
        if path == "/order" and method == "POST":
            self.order_requests += 1
            headers["Content-Type"] = "application/problem+json"
            if self.retry_after is not None:
                headers["Retry-After"] = self.retry_after
            return self.status, headers, json.dumps(self.problem).encode()
        return 404, headers, b"{}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            status, headers, body = self._answer(method, path)
            headers["Content-Length"] = str(len(body))
            headers["Connection"] = "close"
            head_out = f"HTTP/1.1 {status} X\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head_out.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
