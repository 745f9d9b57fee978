"""Which Berth is installed here: its version and a build id, so that `berth version`
can tell a running agent started from an earlier install apart from the files on disk,
even when both carry the same version number.

The build id is a digest of the installed distribution's RECORD (every file with its
hash), read through importlib.metadata; without one (a bare checkout on PYTHONPATH) the
package's own version stands alone.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

from agent import __version__

DISTRIBUTION = "berth"


def installed_version() -> str:
    """`VERSION+BUILD` of the installed package, or the bare version without one."""
    try:
        record = metadata.distribution(DISTRIBUTION).read_text("RECORD")
    except metadata.PackageNotFoundError:
        return __version__
    if not record:
        return __version__
    return f"{__version__}+{build_id(record)}"


def build_id(record: str) -> str:
    """A short digest of an installed RECORD (pure)."""
    return hashlib.sha256(record.encode("utf-8")).hexdigest()[:10]


def describe_versions(installed: str, running: str | None, restart: str) -> list[str]:
    """`berth version`'s lines: the installed Berth, the running agent, and what to do
    when they differ (pure)."""
    lines = [f"berth {installed} (installed)"]
    if running is None:
        return lines
    if running == installed:
        return [*lines, f"agent {running} (running)"]
    return [*lines, f"agent {running} (running; not the installed one: restart it, {restart})"]
