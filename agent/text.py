"""Making text that came from outside (an app's log, a client's header) safe to show on
a terminal or to store as one line: what is not printable goes. Pure."""

from __future__ import annotations


def printable(text: str, keep: str = "") -> str:
    """`text` without its non-printable characters (control characters, ANSI/OSC escape
    introducers, line and paragraph separators), except those in `keep` (e.g. a tab)."""
    return "".join(c for c in text if c.isprintable() or c in keep)
