"""Resource limits of an app's containers (`ps:limit`): values, parsing, resolution. Pure.

Each process type of an app (and `release` for its release phase, `run` for its
one-offs) may set `memory`, `cpus` and `pids`; what it leaves unset comes from the
defaults in berth.toml (`[deploy] memory_limit`, `cpu_limit`, `pids_limit`). Memory has
no swap beyond it: past the limit the kernel kills the process (OOM), the restart
policy restarts it, and the app's events say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from agent.config import DeploySettings
from agent.errors import BerthError, echo

KEYS = ("memory", "cpus", "pids")
MEMORY = re.compile(r"([0-9]{1,7})([kmg])b?", re.IGNORECASE)
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024**2  # the engine refuses less
MAX_MEMORY = 1024**4
MAX_CPUS = 512
MAX_PIDS = 4_194_304


class InvalidLimit(BerthError):
    def __init__(self, text: str, rule: str) -> None:
        super().__init__(f"invalid limit {echo(text)}: {rule}")


@dataclass(frozen=True)
class Limits:
    """None: not limited here (for an app's own: the default applies)."""

    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None

    def over(self, defaults: Limits) -> Limits:
        """These limits, each unset one taken from `defaults`."""
        return Limits(*(getattr(self, f.name) if getattr(self, f.name) is not None
                        else getattr(defaults, f.name) for f in fields(self)))

    def with_changes(self, changes: Limits, cleared: Sequence[str] = ()) -> Limits:
        """These limits with `changes` set and the keys in `cleared` unset."""
        updated = replace(self, **{k: v for k, v in _items(changes) if v is not None})
        return replace(updated, **{key: None for key in cleared})

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in _items(self) if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        return cls(**{key: data[key] for key in KEYS if data.get(key) is not None})

    def describe(self) -> str:
        """`memory=512m cpus=1 pids=256`; "unlimited" when nothing is set."""
        parts = [f"memory={memory_text(self.memory)}" if self.memory else "",
                 f"cpus={self.cpus:g}" if self.cpus else "",
                 f"pids={self.pids}" if self.pids else ""]
        return " ".join(p for p in parts if p) or "unlimited"


def _items(limits: Limits) -> list[tuple[str, Any]]:
    return [(f.name, getattr(limits, f.name)) for f in fields(limits)]


def parse_memory(text: str) -> int:
    match = MEMORY.fullmatch(text.strip())
    if not match:
        raise InvalidLimit(text, "memory is a size such as 512m or 2g")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise InvalidLimit(text, "memory must be from 6m to 1024g")
    return size


def memory_text(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}b"


def _parse_cpus(text: str) -> float:
    try:
        cpus = float(text)
    except ValueError:
        raise InvalidLimit(text, "cpus is a number such as 0.5 or 2") from None
    if not 0.01 <= cpus <= MAX_CPUS:
        raise InvalidLimit(text, f"cpus must be from 0.01 to {MAX_CPUS}")
    return round(cpus, 2)


def _parse_pids(text: str) -> int:
    if not text.isdigit() or not 16 <= int(text) <= MAX_PIDS:
        raise InvalidLimit(text, f"pids is a whole number from 16 to {MAX_PIDS}")
    return int(text)


_PARSERS = {"memory": parse_memory, "cpus": _parse_cpus, "pids": _parse_pids}


def parse_limits(pairs: Sequence[str]) -> tuple[Limits, list[str]]:
    """`memory=512m cpus=1 pids=256` (a bare `memory=` clears it back to the default):
    the limits set and the keys cleared."""
    values: dict[str, Any] = {}
    cleared: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in _PARSERS:
            raise InvalidLimit(pair, "expected memory=SIZE, cpus=N or pids=N")
        if value == "":
            cleared.append(key)
        else:
            values[key] = _PARSERS[key](value)
    if not values and not cleared:
        raise InvalidLimit(" ".join(pairs), "give memory=SIZE, cpus=N or pids=N")
    return Limits(**values), cleared


def default_limits(deploy: DeploySettings) -> Limits:
    """berth.toml's defaults (`[deploy] memory_limit`, ...; "" or 0: no limit)."""
    memory = deploy.memory_limit
    return Limits(parse_memory(memory) if memory else None, deploy.cpu_limit or None,
                  deploy.pids_limit or None)


def engine_limits(limits: Limits) -> dict[str, Any]:
    """The engine's host-config arguments for `limits` (memory with no extra swap)."""
    result: dict[str, Any] = {}
    if limits.memory:
        result["mem_limit"] = limits.memory
        result["memswap_limit"] = limits.memory
    if limits.cpus:
        result["nano_cpus"] = int(limits.cpus * 1e9)
    if limits.pids:
        result["pids_limit"] = limits.pids
    return result
