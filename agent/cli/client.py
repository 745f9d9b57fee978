"""The control API's client: JSON calls and NDJSON event streams over the agent's socket.

Errors come back as one `BerthError` line: the agent's own message when it answered, or
what to do when it cannot be reached. Light on imports (`agent.cli.wire`, no pathlib):
the git hook loads it on every push.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlencode

from agent.cli import wire
from agent.cli.starthint import start_hint
from agent.errors import AgentUnavailable, BerthError

if TYPE_CHECKING:
    from pathlib import Path


class ResponseError(BerthError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def path(*parts: str) -> str:
    """A URL path from parts, each quoted (names never need it, but values might)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ControlClient:
    def __init__(self, socket_path: str | Path, *, timeout: float | None = 60.0,
                 actor: str = "", verb: str = "", key: str = "") -> None:
        """`actor` and `verb` go to the audit trail (agent.api.audit) with each change;
        `key`, the SSH key a request is made for, is checked against its scope
        (agent.api.access)."""
        self.socket_path = socket_path
        self._timeout = timeout
        self._who = {"X-Berth-Actor": actor, "X-Berth-Verb": verb, "X-Berth-Key": key}

    def headers(self) -> dict[str, str]:
        """Who a request is made by and for: sent with every request, WebSockets too."""
        return {k: v for k, v in self._who.items() if v}

    def _open(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None, body: bytes | Iterable[bytes] | None = None,
        timeout: float | None = None,
    ) -> wire.Answer:
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", **self.headers()}
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        where = os.fspath(self.socket_path)
        try:
            return wire.request(where, method, url, headers=headers, body=body, timeout=timeout)
        except FileNotFoundError:
            raise AgentUnavailable(
                f"the agent is not running (no socket at {where}); {start_hint()}") from None
        except ConnectionRefusedError:
            raise AgentUnavailable(
                f"the agent is not running (nothing answers at {where}); {start_hint()}") from None
        except PermissionError:
            raise AgentUnavailable(
                f"permission denied on {where}: run as root or the berth user") from None
        except (OSError, wire.ProtocolError) as exc:
            raise AgentUnavailable(f"cannot talk to the agent at {where}: {exc}") from None

    def call(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """A JSON request; returns the decoded answer or raises its error."""
        return _json_answer(self._open(method, url, payload=payload, query=query,
                                       timeout=self._timeout))

    def call_raw(self, method: str, url: str, body: bytes) -> Any:
        """A request with a raw body (PEM input); JSON answer as `call`."""
        return _json_answer(self._open(method, url, body=body, timeout=self._timeout))

    def stream(
        self, method: str, url: str, *, payload: Any = None,
        query: Mapping[str, str] | None = None, body: Iterable[bytes] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """An NDJSON stream of events; a refusal before streaming raises its error."""
        answer = self._open(method, url, payload=payload, query=query, body=body,
                            timeout=None)
        try:
            if answer.status >= 400:
                _refusal(answer.status, _decode(answer.read()))
            for raw in answer.lines():
                if raw.strip():
                    yield json.loads(raw)
        except (OSError, wire.ProtocolError) as exc:
            raise AgentUnavailable(f"lost the agent mid-answer: {exc}") from None
        finally:
            answer.close()

    def download(self, url: str) -> Iterator[bytes]:
        """A raw body (a backup), piece by piece; a refusal raises its error."""
        answer = self._open("GET", url, timeout=None)
        try:
            if answer.status >= 400:
                _refusal(answer.status, _decode(answer.read()))
            yield from answer.pieces()
        except (OSError, wire.ProtocolError) as exc:
            raise AgentUnavailable(f"lost the agent mid-answer: {exc}") from None
        finally:
            answer.close()


def relay(events: Iterator[dict[str, Any]], say: Callable[[str], None]) -> int:
    """An operation's stream (`agent.api.streaming`): each line to `say` as it comes;
    its result ends it with status 0, its error is raised."""
    for item in events:
        if "line" in item:
            say(item["line"])
        elif "error" in item:
            raise BerthError(item["error"])
        elif "result" in item:
            return 0
    raise BerthError("the agent ended the answer early")


def _json_answer(answer: wire.Answer) -> Any:
    try:
        raw = answer.read()
    except (OSError, wire.ProtocolError) as exc:
        raise AgentUnavailable(f"lost the agent mid-answer: {exc}") from None
    finally:
        answer.close()
    data = _decode(raw)
    if answer.status >= 400:
        _refusal(answer.status, data)
    return data


def _refusal(status: int, data: Any) -> NoReturn:
    message = data.get("error") if isinstance(data, dict) else None
    raise ResponseError(message or f"the agent answered {status}", status)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": raw[:200].decode("utf-8", "replace")}
