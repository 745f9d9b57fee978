"""Small pieces of Dockerfile text shared by the built-in buildpacks (pure).

Generated Dockerfiles must work on the official images and on plain Debian: they only
assume /bin/sh, `useradd` (or busybox `adduser`) and the language's own tools. Apps run
as an unprivileged `berth` user from /app; dependency installs run as that user too, so
install scripts from the internet never run as root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from agent.build.model import CONTEXT_SOURCE

APP_USER = "berth"
APP_DIR = "/app"
HOME_DIR = "/home/berth"
CONTAINER_PORT = 5000

# Context paths we are willing to name in a COPY: no globbing characters, no spaces,
# nothing that escapes upwards. Anything else falls back to copying the whole tree.
_COPYABLE = re.compile(r"(?!.*(^|/)\.\.(/|$))[A-Za-z0-9_.@+-][A-Za-z0-9_./@+-]*")
# Shell syntax that makes a command line more than one simple command.
_SHELL_SYNTAX = re.compile(r"[;&|`<>()\n]|\$\(")
_ENV_VALUE = re.compile(r"[A-Za-z0-9_./:$@%+,=-]*")


def copyable(path: str) -> bool:
    return bool(_COPYABLE.fullmatch(path))


def labels(app: str, builder: str) -> str:
    """The LABEL line naming the app and the builder (app names need no quoting)."""
    return f"LABEL berth.app={app} berth.builder={builder}"


def create_user(*writable_dirs: str) -> str:
    """The RUN line that creates the app user and the directories it owns."""
    dirs = " ".join((APP_DIR, *writable_dirs))
    return (
        f"RUN (id -u {APP_USER} >/dev/null 2>&1"
        f" || useradd --system --user-group --create-home --home-dir {HOME_DIR}"
        f" --shell /bin/sh {APP_USER}"
        f" || (addgroup -S {APP_USER} && adduser -S -D -G {APP_USER} -h {HOME_DIR} {APP_USER}))"
        f" && mkdir -p {dirs} && chown {APP_USER}:{APP_USER} {dirs}"
    )


def env(values: Mapping[str, str]) -> str:
    """One ENV instruction; `$VAR` in a value expands as the image's variable."""
    parts = []
    for key, value in values.items():
        shown = value if _ENV_VALUE.fullmatch(value) else json.dumps(value)
        parts.append(f"{key}={shown}")
    return "ENV " + " \\\n    ".join(parts)


def copy_source(paths: Sequence[str], dest: str) -> str:
    """COPY of paths of the pushed tree (relative to its root) into `dest`, owned by the app user."""
    sources = [f"{CONTEXT_SOURCE}/{p}" if p else f"{CONTEXT_SOURCE}/" for p in paths]
    return f"COPY --chown={APP_USER}:{APP_USER} " + json.dumps([*sources, dest])


def code_copy() -> str:
    """The COPY of the whole pushed tree into the WORKDIR (/app)."""
    return copy_source([""], "./")


def ends_with_code_copy(text: str) -> bool:
    """Whether a generated Dockerfile's last instruction copies the whole pushed tree
    into /app, its WORKDIR, and nothing runs after it: the image is then the one before
    that step plus the tree, owned by the app user (what `agent.deploy.earlystart`
    relies on)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    workdirs = [line for line in lines if line.startswith("WORKDIR ")]
    return bool(lines) and lines[-1] == code_copy() and workdirs[-1:] == [f"WORKDIR {APP_DIR}"]


def copy_dependency_files(paths: Sequence[str]) -> list[str]:
    """COPY lines for dependency files, keeping their relative paths under /app."""
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        parent = path.rpartition("/")[0]
        by_dir.setdefault(parent, []).append(path)
    lines = []
    for parent, group in sorted(by_dir.items()):
        lines.append(copy_source(group, f"./{parent}/" if parent else "./"))
    return lines


def shell_argv(command: str) -> list[str]:
    """How a process command line runs: through /bin/sh (so `$PORT` expands), with
    `exec` when it is a single simple command, so the process itself gets SIGTERM."""
    first = command.split(maxsplit=1)[0] if command.strip() else ""
    if _SHELL_SYNTAX.search(command) or "=" in first or first == "exec":
        return ["/bin/sh", "-c", command]
    return ["/bin/sh", "-c", f"exec {command}"]


def cmd(command: str) -> str:
    return "CMD " + json.dumps(shell_argv(command))


def cmd_lines(command: str | None) -> list[str]:
    """The CMD line for a default web command, or none without one."""
    return [cmd(command)] if command else []


def build_args(names: Sequence[str]) -> list[str]:
    return [f"ARG {name}" for name in names]


def render(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"
