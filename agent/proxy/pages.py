"""Responses the proxy writes itself: error pages, redirects, ACME challenge answers.

Small, friendly HTML for people and an exact status for machines. Every response here is
complete bytes with a Content-Length, rendered once per status (errors) or per request
(redirects, challenges), so answering costs one write. They are made as answers to GET;
their two writers (the exchange, and the client connection refusing a request) send a
HEAD request their head alone.
"""

from __future__ import annotations

from functools import cache
from html import escape

REASONS = {
    100: "Continue",
    301: "Moved Permanently",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

_EXPLANATIONS = {
    400: "The request could not be understood.",
    404: "No app is served on this address. Check the domain name.",
    405: "This method is not supported here.",
    408: "The request took too long to arrive.",
    413: "The request body is larger than this app accepts.",
    414: "The requested address is too long.",
    417: "The request's expectation cannot be met.",
    421: "This connection was made for another site. Connect again for this one.",
    431: "The request headers are too large.",
    501: "The request uses a feature this server does not support.",
    502: "The app did not answer properly. It may be restarting; try again in a moment.",
    503: "The app has no running instance right now. Try again in a moment.",
    504: "The app took too long to answer.",
    505: "Only HTTP/1.0 and HTTP/1.1 are served.",
}

_STARTING = "The server is starting and this app is not restored yet. Try again in a moment."

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} {reason}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#333}}
h1{{font-size:1.4em}}small{{color:#888}}</style></head>
<body><h1>{status} {reason}</h1><p>{text}</p><small>berth</small></body></html>
"""


def reason(status: int) -> str:
    return REASONS.get(status, "Error")


@cache
def error_response(status: int, close: bool) -> bytes:
    """A complete HTML error response."""
    return _error_page(status, _EXPLANATIONS.get(status, ""), close, "")


@cache
def starting_response(close: bool) -> bytes:
    """503 for a host whose route is not restored yet while the proxy starts."""
    return _error_page(503, _STARTING, close, "Retry-After: 1\r\n")


def _error_page(status: int, text: str, close: bool, extra: str) -> bytes:
    body = _PAGE.format(status=status, reason=escape(reason(status)), text=escape(text)).encode()
    head = (
        f"HTTP/1.1 {status} {reason(status)}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n" + extra
        + ("Connection: close\r\n" if close else "") + "\r\n"
    )  # fmt: skip
    return head.encode() + body


def head_only(response: bytes) -> bytes:
    """The same response without its body: the answer to HEAD (RFC 9110 section 9.3.2:
    no content, and the Content-Length GET would get)."""
    return response[: response.index(b"\r\n\r\n") + 4]


def redirect_response(status: int, location: bytes, close: bool) -> bytes:
    body = b'<a href="' + escape(location.decode("latin-1")).encode("latin-1") + b'">moved</a>\n'
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode()),
            b"Location: " + location + b"\r\n",
            b"Content-Type: text/html\r\nContent-Length: %d\r\n" % len(body),
            b"Connection: close\r\n" if close else b"",
            b"\r\n",
            body,
        )
    )


def challenge_response(key_authorization: bytes, close: bool) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n",
            b"Content-Length: %d\r\nCache-Control: no-store\r\n" % len(key_authorization),
            b"Connection: close\r\n" if close else b"",
            b"\r\n",
            key_authorization,
        )
    )


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
