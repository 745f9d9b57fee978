"""berth.toml from a server archive: checked, put where the agent reads its own.

The archive's file replaces this server's only when the agent could start with it and
it keeps the agent on the data the restore just put in place (the same
`paths.data_dir`); the previous file is kept beside it (`berth.toml.before-restore`). A
file that fails either check is left beside this server's as `berth.toml.from-archive`,
and the reason is said: the server keeps running on the configuration it has. Once the
restore ends, the agent restarts in place to apply a replaced file
(agent.serverbackup.restoring, agent.handover: no request is refused).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.config import parse_config
from agent.errors import BerthError

BEFORE = ".before-restore"
FROM_ARCHIVE = ".from-archive"


@dataclass(frozen=True)
class ConfigRestored:
    replaced: bool  # the file changed: the agent must restart to apply it
    said: str | None  # what the restore's output says about it


def put_back(archived: Path, current: Path, data_dir: Path) -> ConfigRestored:
    """The archive's berth.toml (`archived`) in place of `current`, if it may be."""
    text = archived.read_bytes()
    if current.is_file() and current.read_bytes() == text:
        return ConfigRestored(False, None)
    problem = _problem(text, current, data_dir)
    if problem is not None:
        kept = current.with_name(current.name + FROM_ARCHIVE)
        _write(kept, text, like=current)
        return ConfigRestored(False, f"{current} kept: the archive's berth.toml {problem} "
                                     f"(it is in {kept.name})")
    if current.is_file():
        shutil.copy2(current, current.with_name(current.name + BEFORE))
    _write(current, text, like=current)
    return ConfigRestored(True, f"{current} restored (the previous one is "
                                f"{current.name}{BEFORE})")


def _problem(text: bytes, source: Path, data_dir: Path) -> str | None:
    """Why the agent must not restart on `text` (None: it may)."""
    try:
        config = parse_config(text.decode("utf-8"), source=source)
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    except BerthError as exc:
        return f"is not a configuration this Berth can start with: {str(exc).splitlines()[0]}"
    if config.paths.data_dir.resolve() != data_dir.resolve():
        return (f"puts data_dir at {config.paths.data_dir}, not where the restored data is "
                f"({data_dir})")
    return None


def _write(path: Path, text: bytes, *, like: Path) -> None:
    """`text` into `path` in one step, with `like`'s mode (0644 without it: the agent
    and the berth user read it)."""
    partial = path.with_name(f".{path.name}.restoring")
    partial.write_bytes(text)
    if like.is_file():
        shutil.copymode(like, partial)
    else:
        partial.chmod(0o644)
    partial.replace(path)
