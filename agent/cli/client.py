"""HTTP over the agent's unix socket, with the standard library only.

Errors come back as one `BerthError` line: the agent's own message when it answered, or
what to do when it cannot be reached.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote, urlencode

from agent.errors import AgentUnavailable, BerthError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ResponseError(BerthError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def path(*parts: str) -> str:
    """A URL path from parts, each quoted (names never need it, but values might)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ControlClient:
    def __init__(self, socket_path: Path, *, timeout: float | None = 60.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout

    def _open(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None, body: Iterable[bytes] | None = None,
        timeout: float | None = None,
    ) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        data: Any = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif body is not None:
            data = body
            headers["Content-Type"] = "application/octet-stream"
            headers["Transfer-Encoding"] = "chunked"
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            connection.request(method, url, body=data, headers=headers,
                               encode_chunked=body is not None)
            response = connection.getresponse()
        except FileNotFoundError:
            connection.close()
            raise AgentUnavailable(
                f"the agent is not running (no socket at {self.socket_path}); start it with "
                "`berth agent`") from None
        except PermissionError:
            connection.close()
            raise AgentUnavailable(
                f"permission denied on {self.socket_path}: run as root or the berth user"
            ) from None
        except (ConnectionError, socket.timeout, http.client.HTTPException, OSError) as exc:
            connection.close()
            raise AgentUnavailable(f"cannot talk to the agent at {self.socket_path}: {exc}") from None
        return connection, response

    def call(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """A JSON request; returns the decoded answer or raises its error."""
        return _json_answer(*self._open(method, url, payload=payload, query=query,
                                        timeout=self._timeout))

    def call_raw(self, method: str, url: str, body: bytes) -> Any:
        """A request with a raw body (PEM input); JSON answer as `call`."""
        return _json_answer(*self._open(method, url, body=[body], timeout=self._timeout))

    def stream(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None, body: Iterable[bytes] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """An NDJSON stream of events; a refusal before streaming raises its error."""
        connection, response = self._open(method, url, payload=payload, query=query,
                                          body=body, timeout=None)
        try:
            if response.status >= 400:
                data = _decode(response.read())
                message = data.get("error") if isinstance(data, dict) else None
                raise ResponseError(message or f"the agent answered {response.status}",
                                    response.status)
            for raw in response:
                if raw.strip():
                    yield json.loads(raw)
        except (ConnectionError, http.client.HTTPException) as exc:
            raise AgentUnavailable(f"lost the agent mid-answer: {exc}") from None
        finally:
            connection.close()


def _json_answer(connection: _UnixConnection, response: http.client.HTTPResponse) -> Any:
    try:
        raw = response.read()
    finally:
        connection.close()
    data = _decode(raw)
    if response.status >= 400:
        message = data.get("error") if isinstance(data, dict) else None
        raise ResponseError(message or f"the agent answered {response.status}", response.status)
    return data


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": raw[:200].decode("utf-8", "replace")}
