"""How a CLI verb is declared: its name, one-line summary, arguments and handler.

Each module under agent/cli/verbs/ exposes `VERBS`; `agent.cli.main` collects them. A
handler gets a `Context` (the control client and the streams) and the parsed arguments,
and returns the exit status; it raises `BerthError` for anything the user must fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from agent.cli.client import ControlClient, relay


@dataclass
class Context:
    client: ControlClient
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    environ: Mapping[str, str] = field(default_factory=dict)
    remote: bool = False  # run as the SSH forced command: files named are the server's

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def json(self, data: Any) -> int:
        self.print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))
        return 0


Handler = Callable[[Context, argparse.Namespace], int]


@dataclass(frozen=True)
class Arg:
    names: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


APP = arg("app", metavar="APP", help="the app's name")
JSON = arg("--json", action="store_true", help="print JSON instead of text")


@dataclass(frozen=True)
class Verb:
    name: str
    summary: str
    run: Handler
    args: Sequence[Arg] = ()
    usage_note: str = ""

    def add_to(self, parsers: Any) -> None:
        """Add this verb to an argparse sub-parsers action."""
        parser = parsers.add_parser(self.name, help=self.summary, description=self.summary,
                                    epilog=self.usage_note or None)
        for argument in self.args:
            parser.add_argument(*argument.names, **dict(argument.options))
        parser.set_defaults(handler=self.run, verb=self.name)


def follow(ctx: Context, events: Iterator[dict[str, Any]]) -> int:
    """Print an operation's lines as they come; its error ends it with status 1."""
    return relay(events, ctx.print)


def table(ctx: Context, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Columns aligned on the widest cell; empty tables print only the header."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        ctx.print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 4h07m, 2d3h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"
