"""Reading a request: the agent's services, the app named in the path, the JSON body,
and numbers from users (range-checked, never trusted)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request

from agent.api.services import Services
from agent.errors import BerthError, echo
from agent.names import check_app


def services(request: HTTPConnection) -> Services:
    result: Services = request.app.state.services
    return result


T = TypeVar("T")


def required(part: T | None, missing: str) -> T:
    """A part of the agent a request needs (add-ons, backups, certificates...), or the
    one line `missing` when this agent runs without it."""
    if part is None:
        raise BerthError(missing)
    return part


def app_param(request: HTTPConnection) -> str:
    return check_app(request.path_params["app"])


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BerthError("request body is not JSON") from None
    if not isinstance(data, dict):
        raise BerthError("request body must be a JSON object")
    return data


_DIGITS = re.compile(r"[0-9]{1,18}")


def number(text: str, what: str, low: int, high: int) -> int:
    """A whole number from a user, in [low, high]; anything else is one clear line
    (never an overflow deeper down: SQLite and the engine take 64-bit numbers at most)."""
    if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
        raise BerthError(f"invalid {what} {echo(text)}: expected a number from {low} to {high}")
    return int(text)
