"""Control API endpoints for certificates (a thin layer over CertificateManager)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, json_body, required, services
from agent.certs.manager import CertificateManager
from agent.certs.status import CertStatus, render
from agent.errors import BerthError
from agent.names import check_app

MAX_PEM_BYTES = 256 * 1024


def _manager(request: Request) -> CertificateManager:
    return required(services(request).certificates,
                    "the certificate manager is not running in this agent")


def _answer(statuses: Sequence[CertStatus]) -> Response:
    return JSONResponse({"certificates": [s.to_dict() for s in statuses],
                         "text": render(statuses)})


async def list_certificates(request: Request) -> Response:
    app = request.query_params.get("app") or None
    if app is not None:
        services(request).apps.get(check_app(app))
    return _answer(_manager(request).status(app))


async def renew(request: Request) -> Response:
    body = await json_body(request)
    target = str(body.get("target", ""))
    if not target:
        raise BerthError("renew what? give an app or a domain")
    return _answer(await _manager(request).renew(target, force=bool(body.get("force"))))


async def add_custom(request: Request) -> Response:
    name = app_param(request)
    services(request).apps.get(name)
    body = await request.body()
    if len(body) > MAX_PEM_BYTES:
        raise BerthError("the PEM input is too large")
    cert_pem, key_pem = split_pem(body)
    status = await _manager(request).add_custom(name, cert_pem, key_pem)
    return _answer([status])


async def remove_custom(request: Request) -> Response:
    name = app_param(request)
    await _manager(request).remove(name)
    return _answer(_manager(request).status(name))


def split_pem(data: bytes) -> tuple[bytes, bytes]:
    """Certificates (the chain, leaf first) and the private key from one PEM stream."""
    certs: list[bytes] = []
    keys: list[bytes] = []
    block: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN "):
            block = [line]
        elif block:
            block.append(line)
            if line.startswith(b"-----END "):
                text = b"".join(block)
                (keys if b"PRIVATE KEY" in block[0] else certs).append(text)
                block = []
    if not certs:
        raise BerthError("no certificate found in the PEM input (expected the certificate "
                         "chain and the private key, concatenated)")
    if len(keys) != 1:
        raise BerthError("expected exactly one private key in the PEM input")
    return b"".join(certs), keys[0]


def routes() -> list[BaseRoute]:
    return [
        Route("/certs", list_certificates, methods=["GET"]),
        Route("/certs/renew", renew, methods=["POST"]),
    ]


def app_routes() -> list[BaseRoute]:
    return [
        Route("/certs", add_custom, methods=["POST"]),
        Route("/certs", remove_custom, methods=["DELETE"]),
    ]
