"""app.json (Heroku/Dokku format): health checks and the initial formation.

Only what Berth acts on is read: `healthchecks.web[]` (Dokku's startup checks: `path`,
`content`, `attempts`, `timeout`, `wait`, `initialDelay`, `httpHeaders`) and
`formation.TYPE.quantity`. An invalid app.json fails the deploy with the reason, before
anything is started.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import BerthError


class AppJsonError(BerthError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"app.json: {problem}")


@dataclass(frozen=True)
class HealthCheck:
    """One HTTP check run against every new web instance before the swap."""

    path: str = "/"
    name: str = ""
    content: str = ""  # the body must contain this, when set
    attempts: int = 5
    timeout: float = 5.0  # per attempt
    wait: float = 1.0  # between attempts
    initial_delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    # True for the built-in check (any status below 500 will do, retried until the
    # deploy's deadline); app.json checks want a 2xx/3xx within their attempts.
    default: bool = False


@dataclass(frozen=True)
class AppJson:
    checks: tuple[HealthCheck, ...] = ()
    formation: Mapping[str, int] = field(default_factory=dict)


def parse_app_json(text: str) -> AppJson:
    if not text.strip():
        return AppJson()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppJsonError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise AppJsonError("expected an object at the top")
    return AppJson(checks=_checks(data.get("healthchecks")), formation=_formation(data))


def _checks(section: Any) -> tuple[HealthCheck, ...]:
    if section is None:
        return ()
    if not isinstance(section, dict):
        raise AppJsonError("healthchecks must be an object of process types")
    web = section.get("web", [])
    if not isinstance(web, list):
        raise AppJsonError("healthchecks.web must be a list")
    checks = []
    for index, item in enumerate(web):
        where = f"healthchecks.web[{index}]"
        if not isinstance(item, dict):
            raise AppJsonError(f"{where} must be an object")
        kind = item.get("type", "startup")
        if kind != "startup":
            continue  # liveness/readiness checks are not deploy-time checks
        if "command" in item or "uptime" in item and "path" not in item:
            raise AppJsonError(f"{where}: only HTTP checks (path) are supported")
        checks.append(_check(item, where))
    return tuple(checks)


def _check(item: Mapping[str, Any], where: str) -> HealthCheck:
    path = item.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n"):
        raise AppJsonError(f"{where}.path must be an absolute path such as /health")
    headers = []
    for header in item.get("httpHeaders", []) or []:
        if not isinstance(header, dict) or not {"name", "value"} <= set(header):
            raise AppJsonError(f"{where}.httpHeaders entries need name and value")
        name, value = str(header["name"]), str(header["value"])
        if any(c in name + value for c in "\r\n\0") or ":" in name:
            raise AppJsonError(f"{where}.httpHeaders has an invalid header")
        headers.append((name, value))
    return HealthCheck(
        path=path,
        name=str(item.get("name", "")),
        content=str(item.get("content", "")),
        attempts=_number(item, "attempts", 5, where, integer=True, low=1, high=1000),
        timeout=_number(item, "timeout", 5, where, low=0.1, high=600),
        wait=_number(item, "wait", 1, where, low=0, high=600),
        initial_delay=_number(item, "initialDelay", 0, where, low=0, high=3600),
        headers=tuple(headers),
    )


def _number(
    item: Mapping[str, Any], key: str, default: float, where: str, *,
    integer: bool = False, low: float, high: float,
) -> Any:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        integer and not isinstance(value, int)
    ):
        raise AppJsonError(f"{where}.{key} must be a number")
    if not low <= value <= high:
        raise AppJsonError(f"{where}.{key} must be between {low:g} and {high:g}")
    return int(value) if integer else float(value)


def _formation(data: Mapping[str, Any]) -> dict[str, int]:
    section = data.get("formation")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise AppJsonError("formation must be an object of process types")
    formation = {}
    for name, spec in section.items():
        quantity = spec.get("quantity", 1) if isinstance(spec, dict) else None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= 100:
            raise AppJsonError(f"formation.{name}.quantity must be an integer 0-100")
        formation[str(name)] = quantity
    return formation
