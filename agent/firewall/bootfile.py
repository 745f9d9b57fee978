"""The ruleset saved for boot: the file install.sh's boot loader (berth-firewall.service,
or the SysV script /etc/init.d/berth-firewall) hands to `nft -f` before the network
comes up, so the host is covered before anything listens and before the agent starts.

The agent owns the file (see `agent.firewall.service`): each apply that stands (one
without `--confirm-within`, or once confirmed) writes exactly the transaction it loaded;
`firewall:disable` and an agent started with `enabled = false` remove it, and with no
file the boot loader loads nothing. A write goes to a temporary file in the same
directory, is flushed to disk and renamed over the old one: a power cut leaves the old
ruleset or the new one, never part of one. Problems come back as one line, never raised:
the rules in the kernel are what protects the host now, the file only the next boot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootRuleset:
    """The saved boot ruleset at `path`; None: this firewall saves none."""

    path: Path | None

    async def read(self) -> str | None:
        """The saved text, or None if there is none (or it cannot be read)."""
        if self.path is None:
            return None
        return await asyncio.to_thread(_read, self.path)

    async def save(self, text: str) -> str | None:
        """Save `text` atomically; None when done (or already there), else the problem."""
        if self.path is None:
            return None
        return await asyncio.to_thread(_save, self.path, text)

    async def remove(self) -> str | None:
        """Remove the saved ruleset (a missing one is fine); None when done, else the problem."""
        if self.path is None:
            return None
        return await asyncio.to_thread(_remove, self.path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("boot ruleset unreadable path=%s error=%s", path, exc)
        return None


def _save(path: Path, text: str) -> str | None:
    if _read(path) == text:
        return None
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        return _problem("saved", path, exc)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
        _sync_directory(path.parent)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        return _problem("saved", path, exc)
    log.info("boot ruleset saved path=%s", path)
    return None


def _remove(path: Path) -> str | None:
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _problem("removed", path, exc)
    _sync_directory(path.parent)
    log.info("boot ruleset removed path=%s", path)
    return None


def _sync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _problem(done: str, path: Path, exc: OSError) -> str:
    log.warning("boot ruleset not %s path=%s error=%s", done, path, exc)
    return f"the ruleset loaded at boot could not be {done} ({path}: {exc.strerror or exc})"
