"""The files Berth ships beside its code: the git hook templates (hooks/) and the
built-in buildpacks (buildpacks/).

In a checkout they sit at the top of the repository, where people read and edit them;
a built wheel carries copies inside the package, under agent/_shipped/ (setup.py puts
them there). This module finds them from the installed package, whichever way it was
installed, and says clearly when they are missing.
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import BerthError

PACKAGE = Path(__file__).resolve().parent
# Inside a wheel: agent/_shipped/NAME; in a checkout (or an editable install): ../NAME.
_PLACES = (PACKAGE / "_shipped", PACKAGE.parent)


class ShippedFilesMissing(BerthError):
    """Berth was installed without the files it ships (a broken package)."""

    def __init__(self, name: str, marker: str) -> None:
        super().__init__(f"Berth's {name}/ directory is missing ({name}/{marker} not found "
                         f"in the installed package): reinstall Berth from its wheel")
        self.name = name


def shipped_dir(name: str, marker: str) -> Path:
    """The shipped directory `name` ("hooks" or "buildpacks"), recognised by `marker`,
    a file it must hold."""
    for place in _PLACES:
        candidate = place / name
        if (candidate / marker).exists():
            return candidate
    raise ShippedFilesMissing(name, marker)


def hooks_dir() -> Path:
    """The git hook templates."""
    return shipped_dir("hooks", "pre-receive")


def buildpacks_dir() -> Path:
    """The built-in buildpacks."""
    return shipped_dir("buildpacks", "README.md")
