"""What a Python project depends on, read from its requirements files, Pipfile or
pyproject.toml: the normalised names detection looks at (gunicorn, uvicorn, django),
extras included, and the files the dependency install needs.

Reads go through `SourceTree` (agent.treefile's rules); the rest is pure.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from agent.build.errors import InvalidSource
from agent.build.source import SourceTree

_SPEC = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_INCLUDE = re.compile(r"(-r|--requirement|-c|--constraint)(=|\s+)(\S+)$")
_EDITABLE = re.compile(r"(-e|--editable)(=|\s+)(\S+)$")
# Extras whose packages matter to detection: the server they install.
_FASTAPI_SERVER = frozenset({"uvicorn", "fastapi-cli"})
EXTRAS_BRING: dict[tuple[str, str], frozenset[str]] = {
    ("fastapi", "standard"): _FASTAPI_SERVER,
    ("fastapi", "standard-no-fastapi-cloud-cli"): _FASTAPI_SERVER,
    ("fastapi", "all"): _FASTAPI_SERVER,
    ("litestar", "standard"): frozenset({"uvicorn"}),
    ("starlette", "full"): frozenset(),
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class _Requirements:
    files: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    needs_source: bool = False


def read_requirements(
    tree: SourceTree, path: str, found: _Requirements | None = None
) -> _Requirements:
    """Names, included files and local references of a requirements file (recursively)."""
    found = found if found is not None else _Requirements()
    if path in found.files:
        return found
    text = tree.read_text(path)
    if text is None:
        raise InvalidSource(path, "missing or unreadable (named by a requirements file)")
    found.files.append(path)
    base = posixpath.dirname(path)
    for line in _logical_lines(text):
        include = _INCLUDE.match(line)
        editable = _EDITABLE.match(line)
        if include:
            target = posixpath.normpath(posixpath.join(base, include.group(3)))
            if target.startswith(("../", "/")):
                raise InvalidSource(path, f"{include.group(3)!r} points outside the repository")
            read_requirements(tree, target, found)
        elif editable:
            _add_reference(editable.group(3), found)
        elif line.startswith("-"):
            continue  # --index-url, --hash and other options
        else:
            _add_reference(line, found)
    return found


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", "", text)
    lines = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def _add_reference(spec: str, found: _Requirements) -> None:
    if spec.startswith((".", "/", "file:")):
        found.needs_source = True
        return
    egg = re.search(r"#egg=([A-Za-z0-9._-]+(?:\[[^\]]*\])?)", spec)
    if egg:
        found.names |= spec_names(egg.group(1))
        return
    if "://" not in spec.split("@")[0]:
        found.names |= spec_names(spec)


def read_toml(tree: SourceTree, path: str) -> dict[str, Any]:
    text = tree.read_text(path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSource(path, f"not valid TOML: {exc}") from exc


def pep621_dependencies(pyproject: dict[str, Any]) -> list[str]:
    project = pyproject.get("project")
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidSource("pyproject.toml", "[project].dependencies must be a list of strings")
    return deps


def names_of(specs: list[str]) -> set[str]:
    names: set[str] = set()
    for spec in specs:
        names |= spec_names(spec)
    return names


def spec_names(spec: str) -> set[str]:
    """The packages a requirement line brings that detection cares about: its own name,
    and what its extras are known to install (`fastapi[standard]` brings uvicorn)."""
    found = _SPEC.match(spec.strip())
    if not found:
        return set()
    name = normalise(found.group(1))
    extras = {normalise(e) for e in (found.group(2) or "").split(",") if e.strip()}
    names = {name}
    for extra in extras:
        names |= EXTRAS_BRING.get((name, extra), frozenset())
    return names


def table_keys(table: Any) -> set[str]:
    """Names of a Pipfile/poetry dependency table, extras included
    (`fastapi = {extras = ["standard"], version = "*"}`)."""
    if not isinstance(table, dict):
        return set()
    names: set[str] = set()
    for key, value in table.items():
        extras = value.get("extras") if isinstance(value, dict) else None
        listed = ",".join(e for e in extras if isinstance(e, str)) if isinstance(extras, list) else ""
        names |= spec_names(f"{key}[{listed}]" if listed else str(key))
    return names


