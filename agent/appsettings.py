"""Per-app settings (`berth apps:set APP key=value`): parsing, validation, defaults.

These are Berth's knobs for one app, kept apart from the app's config vars (which are the
app's own environment): which branch deploys, the restart policy, the request body
limit, HSTS, automatic certificates, the health-check deadline. Stored as JSON on the app;
an unset key means the global default from berth.toml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from agent.errors import BerthError, echo

RESTART_POLICY = re.compile(r"no|always|unless-stopped|on-failure(:[1-9][0-9]{0,2})?")
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
SIZE = re.compile(r"([0-9]+)\s*([kmg]?)b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_BOOLEAN = {"on": True, "true": True, "yes": True, "1": True,
            "off": False, "false": False, "no": False, "0": False}


# each setting's stored JSON type: (accepted Python types, how an error names them)
_STORED_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "deploy_branch": ((str, type(None)), "a string or null"),
    "restart_policy": ((str, type(None)), "a string or null"),
    "max_body": ((int, type(None)), "a whole number or null"),
    "hsts": ((bool,), "true or false"),
    "acme": ((bool,), "true or false"),
    "health_timeout": ((int, float, type(None)), "a number or null"),
}


def _stored_type_ok(key: str, value: Any) -> bool:
    accepted = _STORED_TYPES[key][0]
    if isinstance(value, bool) and bool not in accepted:
        return False  # JSON true is not a number here
    return isinstance(value, accepted)


class InvalidSetting(BerthError):
    def __init__(self, key: str, value: str, rule: str) -> None:
        super().__init__(f"invalid value {echo(value)} for {key}: {rule}")
        self.key = key
        self.value = value


@dataclass(frozen=True)
class AppSettings:
    """What `apps:set` can change; None means "the global default"."""

    deploy_branch: str | None = None  # None: main or master
    restart_policy: str | None = None
    max_body: int | None = None  # bytes
    hsts: bool = False
    acme: bool = True
    health_timeout: float | None = None  # seconds

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppSettings:
        """Settings as stored; a value of the wrong type raises TypeError naming the key
        (the store turns it into one error for this app, not a crash further on)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"settings are {type(data).__name__}, expected a JSON object")
        known = {f.name for f in fields(cls)}
        chosen = {k: v for k, v in data.items() if k in known}
        for key, value in chosen.items():
            if not _stored_type_ok(key, value):
                raise TypeError(f"{key} is {type(value).__name__} {echo(value)}, "
                                 f"expected {_STORED_TYPES[key][1]}")
        return cls(**chosen)

    @property
    def deploy_branches(self) -> tuple[str, ...]:
        """The branches a push to deploys (the git hook asks for them)."""
        return ("main", "master") if self.deploy_branch is None else (self.deploy_branch,)

    def deploys(self, branch: str) -> bool:
        """Whether a push to `branch` deploys."""
        return branch in self.deploy_branches


def parse_size(text: str) -> int:
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _parse_bool(key: str, value: str) -> bool:
    try:
        return _BOOLEAN[value.lower()]
    except KeyError:
        raise InvalidSetting(key, value, "expected on or off") from None


def apply_setting(settings: AppSettings, key: str, value: str) -> AppSettings:
    """Return `settings` with `key` (as typed on the command line) set to `value`.

    An empty value resets the key to its default.
    """
    name = key.replace("-", "_")
    if name not in {f.name for f in fields(AppSettings)}:
        known = ", ".join(f.name.replace("_", "-") for f in fields(AppSettings))
        raise BerthError(f"unknown app setting {echo(key)} (known: {known})")
    if value == "":
        return replace(settings, **{name: getattr(AppSettings(), name)})
    parsed: Any
    if name == "deploy_branch":
        if not BRANCH.fullmatch(value) or ".." in value:
            raise InvalidSetting(key, value, "expected a git branch name")
        parsed = value
    elif name == "restart_policy":
        if not RESTART_POLICY.fullmatch(value):
            raise InvalidSetting(key, value, "expected no, always, unless-stopped or on-failure[:N]")
        parsed = value
    elif name == "max_body":
        try:
            parsed = parse_size(value)
        except ValueError:
            raise InvalidSetting(key, value, "expected a size such as 100m or 1g") from None
    elif name == "health_timeout":
        try:
            parsed = float(value)
        except ValueError:
            raise InvalidSetting(key, value, "expected seconds") from None
        if not 1 <= parsed <= 3600:
            raise InvalidSetting(key, value, "expected between 1 and 3600 seconds")
    else:
        parsed = _parse_bool(key, value)
    return replace(settings, **{name: parsed})
