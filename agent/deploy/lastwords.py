"""What a dead instance last said, as its crash event shows it (and a new instance that
failed its checks, as the push shows it): the last few lines of its log, each cut to a
bounded length, with every config var value hidden. Pure.

Config vars hold credentials (an add-on's URL carries its password), and an app that
crashes often prints its configuration on the way out, so any config var value found
in a line is replaced by the var's name (`[DATABASE_URL]`), and a URL's password is
replaced on its own as well (an app may print just that part). A value of several lines
(a PEM key, pretty-printed JSON credentials) reaches the log one line at a time, so each
of its lines is hidden on its own too (`[TLS_KEY line]`). Values too short to be secrets
(`PORT=5000`, `DEBUG=1`) are left alone: hiding every `1` would hide the line.

The lines are the app's own text, shown on an admin's terminal: every control character
but the tab is dropped first (an ANSI or OSC escape could recolour, retitle or rewrite
that terminal), the same way the audit trail cleans what a client sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, urlsplit

from agent.text import printable

LINES = 10  # lines of a dead instance's log an event carries
LINE_LENGTH = 200  # characters of each line kept
MIN_SECRET = 6  # shorter config values are not hidden


def secrets_of(config: Mapping[str, str]) -> list[tuple[str, str]]:
    """(value, replacement) pairs to hide, longest value first (so a URL is hidden
    whole before its password is)."""
    found: dict[str, str] = {}
    for name, value in config.items():
        if len(value) >= MIN_SECRET:
            found.setdefault(value, f"[{name}]")
        for line in _lines_of(value):
            found.setdefault(line, f"[{name} line]")
        password = _password(value)
        if password is not None and len(password) >= MIN_SECRET:
            found.setdefault(password, f"[{name} password]")
            found.setdefault(unquote(password), f"[{name} password]")
    return sorted(found.items(), key=lambda pair: -len(pair[0]))


def _lines_of(value: str) -> list[str]:
    """The lines (stripped, long enough to hide) of a value of several lines, else none."""
    lines = [line.strip() for line in value.splitlines()]
    return [line for line in lines if len(line) >= MIN_SECRET] if len(lines) > 1 else []


def _password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        netloc = urlsplit(value).netloc
    except ValueError:
        return None
    userinfo = netloc.rpartition("@")[0]
    return userinfo.partition(":")[2] or None


class Redaction:
    """Hides `config`'s values in a line, in one pass (a replacement is never itself
    searched again: `[DATABASE_URL]` stays whole when another value is `DATABASE`)."""

    def __init__(self, config: Mapping[str, str]) -> None:
        hidden = secrets_of(config)
        self._replacements = dict(hidden)
        self._pattern = re.compile("|".join(re.escape(value) for value, _ in hidden)) \
            if hidden else None

    def __call__(self, line: str) -> str:
        if self._pattern is None:
            return line
        return self._pattern.sub(lambda match: self._replacements[match.group(0)], line)


def last_words(tail: Sequence[str], config: Mapping[str, str], count: int = LINES) -> list[str]:
    """The last `count` non-empty lines of `tail`, without control characters (a tab
    kept), redacted, each at most `LINE_LENGTH` characters (redacted before cutting, so a
    cut never leaves half a secret)."""
    redact = Redaction(config)
    cleaned = (printable(line, keep="\t").rstrip() for line in tail)
    kept = [line for line in cleaned if line.strip()][-count:]
    lines = []
    for line in kept:
        shown = redact(line)
        if len(shown) > LINE_LENGTH:
            shown = shown[: LINE_LENGTH - 3] + "..."
        lines.append(shown)
    return lines


def with_last_words(message: str, lines: Sequence[str]) -> str:
    """An event's message followed by the instance's last lines, one per line."""
    if not lines:
        return message
    return message + "; its last lines:\n" + "\n".join(f"  | {line}" for line in lines)
