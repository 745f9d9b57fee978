"""Plumbing for the proxy tests: async tests on uvloop, a running proxy, raw clients, certs.

Async test functions run on a fresh uvloop loop each. `running_proxy` starts a real
`Proxy` on ephemeral 127.0.0.1 ports; `Client` speaks raw bytes over a real socket and
reads responses with httptools' response parser (not the proxy's own code).
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httptools
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.proxy import Proxy, ProxySettings

TEST_SETTINGS = ProxySettings(listen="127.0.0.1", http_port=0, https_port=0)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=120))
    return True


@asynccontextmanager
async def running_proxy(**overrides: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy(replace(TEST_SETTINGS, **overrides))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(2.0)


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.decode().lower() == name.lower():
                return value.decode("latin-1")
        return None


class _Collector:
    def __init__(self, response: Response) -> None:
        self.response = response
        self._name = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.response.body += body

    def on_message_complete(self) -> None:
        self.response.complete = True


class Client:
    """One real client connection speaking raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buffer = b""

    @classmethod
    async def connect(
        cls, port: int, *, tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
        host: str = "127.0.0.1",
    ) -> Client:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=server_hostname if tls else None,
            limit=1 << 22,
        )  # fmt: skip
        return cls(reader, writer)

    def take_buffered(self) -> bytes:
        """What arrived beyond the last response read (a tunnel's first bytes), now ours."""
        data, self._buffer = self._buffer, b""
        return data

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, *, head: bool = False, timeout: float = 10.0) -> Response:
        """Read one response (informational ones are skipped)."""
        return await asyncio.wait_for(self._response(head), timeout)

    async def _fill(self) -> bool:
        data = await self.reader.read(65536)
        self._buffer += data
        return bool(data)

    async def _response(self, head_request: bool) -> Response:
        while True:
            while b"\r\n\r\n" not in self._buffer:
                if not await self._fill():
                    raise ConnectionError(f"closed before a response head: {self._buffer[:200]!r}")
            end = self._buffer.index(b"\r\n\r\n") + 4
            head, self._buffer = self._buffer[:end], self._buffer[end:]
            status = int(head[9:12])
            if not (100 <= status < 200 and status != 101):
                break
        response = Response(status=status)
        collector = _Collector(response)
        parser = httptools.HttpResponseParser(collector)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError:  # 101: llhttp pauses at the upgrade
            if status != 101:
                raise
        length = response.header("content-length")
        if head_request or status in (101, 204, 304) or length == "0":
            response.complete = True
        elif length is not None:
            while len(self._buffer) < int(length):
                if not await self._fill():
                    break
            response.body, self._buffer = self._buffer[: int(length)], self._buffer[int(length) :]
            response.complete = len(response.body) == int(length)
        else:
            data, self._buffer = self._buffer, b""
            while not response.complete:
                if not data:
                    data = await self.reader.read(65536)
                    if not data:
                        try:
                            parser.feed_data(b"")
                        except httptools.HttpParserError:
                            pass
                        if response.header("transfer-encoding") is None:
                            response.complete = True  # close-delimited body
                        break
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError:
                    break
                data = b""
        connection = (response.header("connection") or "").lower()
        response.keep_alive = response.complete and "close" not in connection
        return response

    async def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `timeout`."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except (ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def request(
    port: int, raw: bytes, *, head: bool = False, tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None, host: str = "127.0.0.1",
) -> tuple[Response, bool]:  # fmt: skip
    """Send raw bytes on a new connection to `host`; the response and whether the server
    closed."""
    client = await Client.connect(port, tls=tls, server_hostname=server_hostname, host=host)
    try:
        await client.send(raw)
        response = await client.response(head=head)
        closed = await client.closed(timeout=0.2 if response.keep_alive else 5.0)
        return response, closed
    finally:
        await client.close()


def get(path: str, host: str = "app.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


# certificates ------------------------------------------------------------------------


@dataclass
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.pem.decode())
        return context

    def issue(self, *names: str, days: int = 30) -> tuple[bytes, bytes]:
        """A (fullchain PEM, key PEM) pair for `names`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(self.key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.pem
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return chain, key_pem


def make_authority(name: str = "Berth Test CA") -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)


@pytest.fixture(scope="session")
def authority() -> CertificateAuthority:
    return make_authority()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
