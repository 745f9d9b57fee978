"""Procfile parsing (Heroku's format): `type: command` lines.

`release` is not a process type but the release-phase command, run once per release in
a one-off container before traffic moves; `parse_procfile` returns it apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import BerthError, InvalidName
from agent.names import check_process_type

_LINE = re.compile(r"^([^:\s][^:]*?)\s*:\s*(.*)$")


class ProcfileError(BerthError):
    def __init__(self, line_number: int, problem: str) -> None:
        super().__init__(f"Procfile line {line_number}: {problem}")
        self.line_number = line_number


@dataclass(frozen=True)
class Procfile:
    processes: Mapping[str, str] = field(default_factory=dict)
    release: str = ""


def parse_procfile(text: str) -> Procfile:
    processes: dict[str, str] = {}
    release = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ProcfileError(number, "expected 'type: command'")
        name, command = match.group(1), match.group(2).strip()
        try:
            check_process_type(name)
        except InvalidName as exc:
            raise ProcfileError(number, str(exc)) from None
        if not command:
            raise ProcfileError(number, f"process type {name!r} has no command")
        if name == "release":
            release = command
        elif name in processes:
            raise ProcfileError(number, f"process type {name!r} is defined twice")
        else:
            processes[name] = command
    return Procfile(processes=processes, release=release)
