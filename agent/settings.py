"""Typed loading of one configuration section into a frozen dataclass.

Every subsystem declares its settings as a frozen dataclass with defaults (the proxy's in
`agent.proxy.settings`, the builder's in `agent.build.settings`, ...). `load_section`
turns the matching TOML table into that dataclass, checking each value against the field's
annotation and refusing unknown keys, so a typo in berth.toml is one clear error line
instead of a silently ignored setting.

Supported field types: bool, int, float, str, Path, Path | None, str | None,
tuple[str, ...], tuple[int, ...], dict[str, str], and nested frozen dataclasses (a
sub-table). An int is accepted where a float is expected. A field with
`metadata={"config": False}` is not read from the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import ConfigError

T = TypeVar("T")


def load_section(cls: type[T], table: Mapping[str, Any] | None, where: str) -> T:
    """Build `cls` from `table`; `where` is the dotted key prefix used in errors."""
    table = dict(table or {})
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {
        f.name for f in dataclasses.fields(cls) if f.init and f.metadata.get("config", True)
    }
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(_join(where, unknown[0]), "unknown setting")
    values: dict[str, Any] = {}
    for name in names:
        if name in table:
            key = _join(where, name)
            values[name] = _coerce(hints[name], table[name], key)
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from exc


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{key}: unsupported union {annotation!r}")
        if value is None or value == "":
            return None
        return _coerce(options[0], value, key)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if not isinstance(value, Mapping):
            raise ConfigError(key, "expected a table")
        return load_section(annotation, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, "expected a list")
        item = args[0]
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, "expected a table")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, "expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(key, "expected a string")
        return value
    if annotation is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, "expected a path")
        return Path(value)
    raise TypeError(f"{key}: unsupported setting type {annotation!r}")
