"""The python buildpack: requirements.txt, Pipfile, poetry, uv or plain pyproject.toml.

`inspect` reads what it needs from the tree into a `PythonProject`; `render` turns that
into a Dockerfile without touching anything (tests feed it projects directly).
Conventions kept from Heroku's Python buildpack:
- the manager is chosen by file: requirements.txt, then Pipfile, then poetry
  (poetry.lock or [tool.poetry]), then uv (uv.lock), then pyproject.toml's [project];
- the version comes from .python-version, else runtime.txt (`python-3.12.4`);
- Django apps (manage.py + django among the dependencies) get
  `python manage.py collectstatic --noinput` unless DISABLE_COLLECTSTATIC is set;
- dependencies are installed from the dependency files alone before the rest of the tree
  is copied, so a push that changes only code reuses that layer.
The project itself is not pip-installed (apps run from /app), except by uv, whose
`uv sync` installs it when it is a package.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from agent.build import ca, dockerfile
from agent.build.errors import InvalidSource
from agent.build.model import CONTEXT_BERTH, BuildPlan, ContextFile
from agent.build.packs import PlanOptions, image_for, is_set
from agent.build.source import SourceTree

MANIFESTS = ("requirements.txt", "Pipfile", "pyproject.toml")
VENV = "/opt/venv"
TOOLS = "/opt/berth/tools"

_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_INCLUDE = re.compile(r"(-r|--requirement|-c|--constraint)(=|\s+)(\S+)$")
_EDITABLE = re.compile(r"(-e|--editable)(=|\s+)(\S+)$")
_SETTINGS_MODULE = re.compile(r"DJANGO_SETTINGS_MODULE['\"]\s*,\s*['\"]([\w.]+)\.settings['\"]")
_WSGI_APP = re.compile(r"^(\w+)\s*=\s*(?:[\w.]+\.)?(Flask|Bottle|Falcon|App|API)\(", re.MULTILINE)
_ASGI_APP = re.compile(
    r"^(\w+)\s*=\s*(?:[\w.]+\.)?(FastAPI|Starlette|Quart|Litestar)\(", re.MULTILINE
)
_FACTORY = re.compile(r"^def (create_app|make_app)\(\)", re.MULTILINE)
# Config vars never handed to the build as arguments: they would change the image's
# own environment for the step.
_RESERVED_ARGS = frozenset({"PATH", "HOME", "PORT", "HOSTNAME", "VIRTUAL_ENV", "PYTHONPATH"})
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class PythonProject:
    manager: str  # "pip" | "pipenv" | "poetry" | "uv" | "pyproject"
    manifest: str  # the file that chose the manager
    dependency_files: tuple[str, ...]  # copied before the install step
    version: str
    version_source: str  # ".python-version", "runtime.txt" or "default"
    packages: frozenset[str] = frozenset()  # normalised names of the declared dependencies
    needs_source: bool = False  # the install refers to the tree itself (`-e .`)
    requirements: tuple[str, ...] = ()  # [project].dependencies, for manager "pyproject"
    has_lock: bool = True  # Pipfile.lock / poetry.lock present
    django_project: str | None = None  # module holding settings/wsgi when Django
    web: str | None = None  # default web command line
    notes: tuple[str, ...] = field(default=())


class PythonBuildpack:
    name = "python"
    looks_for = "requirements.txt, Pipfile or pyproject.toml"

    def detect(self, tree: SourceTree) -> str | None:
        for manifest in MANIFESTS:
            if tree.is_file(manifest):
                return manifest
        return None

    def plan(self, tree: SourceTree, options: PlanOptions) -> BuildPlan:
        return render(inspect(tree, options.settings.python_version), options)


# --- reading the tree --------------------------------------------------------------


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_version(tree: SourceTree, default: str) -> tuple[str, str]:
    text = tree.read_text(".python-version")
    if text is not None:
        lines = [line.split("#")[0].strip() for line in text.splitlines()]
        wanted = next((line for line in lines if line), "")
        if wanted:
            if not _VERSION.fullmatch(wanted):
                raise InvalidSource(
                    ".python-version", f"{wanted!r} is not a version such as 3.12 or 3.12.4"
                )
            return wanted, ".python-version"
    text = tree.read_text("runtime.txt")
    if text is not None and text.strip():
        wanted = text.strip()
        version = wanted.removeprefix("python-")
        if not _VERSION.fullmatch(version):
            raise InvalidSource("runtime.txt", f"{wanted!r} is not like python-3.12.4")
        return version, "runtime.txt"
    return default, "default"


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
    egg = re.search(r"#egg=([A-Za-z0-9._-]+)", spec)
    if egg:
        found.names.add(normalise(egg.group(1)))
        return
    name = _NAME.match(spec)
    if name and "://" not in spec.split("@")[0]:
        found.names.add(normalise(name.group(0)))


def _toml(tree: SourceTree, path: str) -> dict[str, Any]:
    text = tree.read_text(path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSource(path, f"not valid TOML: {exc}") from exc


def _pep621_dependencies(pyproject: dict[str, Any]) -> list[str]:
    project = pyproject.get("project")
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidSource("pyproject.toml", "[project].dependencies must be a list of strings")
    return deps


def _names(specs: list[str]) -> set[str]:
    names = set()
    for spec in specs:
        match = _NAME.match(spec.strip())
        if match:
            names.add(normalise(match.group(0)))
    return names


def _table_keys(table: Any) -> set[str]:
    return {normalise(k) for k in table} if isinstance(table, dict) else set()


def inspect(tree: SourceTree, default_version: str) -> PythonProject:
    version, version_source = python_version(tree, default_version)
    common: dict[str, Any] = {"version": version, "version_source": version_source}
    if tree.is_file("requirements.txt"):
        reqs = read_requirements(tree, "requirements.txt")
        project = PythonProject(
            manager="pip",
            manifest="requirements.txt",
            dependency_files=tuple(reqs.files),
            packages=frozenset(reqs.names),
            needs_source=reqs.needs_source or not all(map(dockerfile.copyable, reqs.files)),
            **common,
        )
    elif tree.is_file("Pipfile"):
        pipfile = _toml(tree, "Pipfile")
        lock = tree.is_file("Pipfile.lock")
        project = PythonProject(
            manager="pipenv",
            manifest="Pipfile",
            dependency_files=("Pipfile", "Pipfile.lock") if lock else ("Pipfile",),
            packages=frozenset(_table_keys(pipfile.get("packages"))),
            has_lock=lock,
            **common,
        )
    else:
        project = _from_pyproject(tree, common)
    return _with_app_facts(tree, project)


def _from_pyproject(tree: SourceTree, common: dict[str, Any]) -> PythonProject:
    pyproject = _toml(tree, "pyproject.toml")
    tool = pyproject.get("tool", {})
    deps = _pep621_dependencies(pyproject)
    if tree.is_file("poetry.lock") or (isinstance(tool, dict) and "poetry" in tool):
        poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
        names = _names(deps) | _table_keys(
            poetry.get("dependencies") if isinstance(poetry, dict) else None
        )
        lock = tree.is_file("poetry.lock")
        files = ["pyproject.toml"] + (["poetry.lock"] if lock else [])
        files += ["poetry.toml"] if tree.is_file("poetry.toml") else []
        return PythonProject(
            manager="poetry",
            manifest="poetry.lock" if lock else "pyproject.toml",
            dependency_files=tuple(files),
            packages=frozenset(names - {"python"}),
            has_lock=lock,
            **common,
        )
    if tree.is_file("uv.lock"):
        return PythonProject(
            manager="uv",
            manifest="uv.lock",
            dependency_files=("pyproject.toml", "uv.lock"),
            packages=frozenset(_names(deps)),
            **common,
        )
    return PythonProject(
        manager="pyproject",
        manifest="pyproject.toml",
        dependency_files=(),
        packages=frozenset(_names(deps)),
        requirements=tuple(deps),
        **common,
    )


def _with_app_facts(tree: SourceTree, project: PythonProject) -> PythonProject:
    django = None
    if tree.is_file("manage.py") and "django" in project.packages:
        django = django_project(tree)
    web = default_web(tree, project.packages, django)
    return replace(project, django_project=django, web=web)


def django_project(tree: SourceTree) -> str:
    """The module that holds settings.py/wsgi.py ("" when it cannot be told)."""
    manage = tree.read_text("manage.py") or ""
    named = _SETTINGS_MODULE.search(manage)
    if named:
        return named.group(1)
    for name in tree.names():
        if tree.is_file(f"{name}/wsgi.py") and tree.is_file(f"{name}/settings.py"):
            return name
    return ""


def default_web(tree: SourceTree, packages: frozenset[str], django: str | None) -> str | None:
    """The web command when there is no Procfile: gunicorn when it is a dependency,
    uvicorn for ASGI apps, else running the obvious entry file."""
    if "gunicorn" in packages:
        if django:
            wsgi = f"{django}.wsgi"
            if tree.is_file(wsgi.replace(".", "/") + ".py"):
                return f"gunicorn {wsgi} --bind 0.0.0.0:$PORT"
        target = _find_app(tree, _WSGI_APP, ("wsgi", "app", "application", "main", "server"))
        if target:
            return f"gunicorn {target} --bind 0.0.0.0:$PORT"
    if "uvicorn" in packages:
        target = _find_app(tree, _ASGI_APP, ("main", "app", "asgi", "server"))
        if target:
            return f"uvicorn {target} --host 0.0.0.0 --port $PORT"
    for entry in ("app.py", "main.py", "server.py"):
        if tree.is_file(entry):
            return f"python {entry}"
    return None


def _find_app(tree: SourceTree, pattern: re.Pattern[str], modules: tuple[str, ...]) -> str | None:
    for module in modules:
        text = tree.read_text(f"{module}.py")
        if text is None:
            continue
        found = pattern.search(text)
        if found:
            return f"{module}:{found.group(1)}"
        if module == "wsgi" and re.search(r"^application\s*=", text, re.MULTILINE):
            return "wsgi:application"
        factory = _FACTORY.search(text)
        if factory:
            return f"'{module}:{factory.group(1)}()'"
    return None


# --- rendering ---------------------------------------------------------------------


def render(project: PythonProject, options: PlanOptions) -> BuildPlan:
    """The Dockerfile and context files for `project` (pure)."""
    settings = options.settings
    trust = options.trust_ca
    tools = {"pipenv": "pipenv", "poetry": "poetry", "uv": "uv"}.get(project.manager)
    lines = [
        f"# Generated by Berth's python buildpack ({project.manager}, {project.manifest}).",
        f"FROM {image_for(settings.python_image, project.version)}",
        dockerfile.labels(options.app, "python"),
        dockerfile.env(_environment(project)),
        dockerfile.create_user(VENV, *([TOOLS] if tools else [])),
    ]
    if trust:
        lines += ca.dockerfile_lines()
    lines += [f"USER {dockerfile.APP_USER}", f"WORKDIR {dockerfile.APP_DIR}"]
    lines.append(f"RUN python3 -m venv {VENV}")
    if tools:
        lines.append(
            f"RUN python3 -m venv {TOOLS} && {ca.wrap(f'{TOOLS}/bin/pip install {tools}', trust)}"
        )
    files: dict[str, ContextFile] = {}
    install = _install_lines(project, trust, files)
    # CMD goes before the code's COPY: after it, it would cost every push one more
    # layer commit; before it, it is cached like the dependency layers.
    code = [*dockerfile.cmd_lines(project.web), dockerfile.code_copy()]
    lines += [*code, *install] if project.needs_source else [*install, *code]
    if project.manager == "uv":
        lines.append("RUN " + ca.wrap(f"{TOOLS}/bin/uv sync --frozen --no-dev", trust))
    buildargs: dict[str, str] = {}
    notes = [
        _version_note(project),
        f"Installing dependencies with {project.manager} ({project.manifest})",
    ]
    if project.django_project is not None:
        if settings.collectstatic and not is_set(options.env, "DISABLE_COLLECTSTATIC"):
            buildargs = _build_args(options) if settings.config_vars_at_build else {}
            lines += dockerfile.build_args(sorted(buildargs))
            lines.append("RUN python manage.py collectstatic --noinput")
            notes.append("Django app: running manage.py collectstatic --noinput")
        else:
            notes.append("Django app: collectstatic disabled")
    processes = {"web": project.web} if project.web else {}
    if not project.web:
        notes.append(
            "No default web process: add a Procfile (web: ...) or gunicorn to the dependencies"
        )
    return BuildPlan(
        builder="python",
        dockerfile=dockerfile.render(lines),
        files=files,
        default_processes=processes,
        buildargs=buildargs,
        notes=tuple(notes),
        labelled=True,
    )


def _environment(project: PythonProject) -> dict[str, str]:
    values = {
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_PROGRESS_BAR": "off",
        "VIRTUAL_ENV": VENV,
        "PATH": f"{VENV}/bin:$PATH",
        "HOME": dockerfile.HOME_DIR,
        "PORT": str(dockerfile.CONTAINER_PORT),
    }
    if project.manager == "poetry":
        values |= {"POETRY_VIRTUALENVS_CREATE": "false", "POETRY_NO_INTERACTION": "1"}
    if project.manager == "uv":
        values |= {
            "UV_PROJECT_ENVIRONMENT": VENV,
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "copy",
            "UV_NO_CACHE": "1",
        }
    if project.manager == "pipenv":
        values |= {"PIPENV_VERBOSITY": "-1", "PIPENV_NOSPIN": "1"}
    return values


def _install_lines(project: PythonProject, trust: bool, files: dict[str, ContextFile]) -> list[str]:
    wrap = ca.wrap
    copy = (
        [] if project.needs_source else dockerfile.copy_dependency_files(project.dependency_files)
    )
    if project.manager == "pip":
        return copy + ["RUN " + wrap("pip install -r requirements.txt", trust)]
    if project.manager == "pipenv":
        lock = "" if project.has_lock else f"{TOOLS}/bin/pipenv lock && "
        export = f"{TOOLS}/bin/pipenv requirements > /tmp/requirements.txt"
        return copy + [
            "RUN " + wrap(f"{lock}{export} && pip install -r /tmp/requirements.txt", trust)
        ]
    if project.manager == "poetry":
        return copy + [
            "RUN " + wrap(f"{TOOLS}/bin/poetry install --only main --no-root --no-ansi", trust)
        ]
    if project.manager == "uv":
        return copy + [
            "RUN " + wrap(f"{TOOLS}/bin/uv sync --frozen --no-dev --no-install-project", trust)
        ]
    if not project.requirements:
        return []
    generated = f"{CONTEXT_BERTH}/python/requirements.txt"
    files[generated] = ContextFile(("\n".join(project.requirements) + "\n").encode())
    return [
        f"COPY {generated} /opt/berth/requirements.txt",
        "RUN " + wrap("pip install -r /opt/berth/requirements.txt", trust),
    ]


def _build_args(options: PlanOptions) -> dict[str, str]:
    return {
        name: value
        for name, value in options.env.items()
        if _ARG_NAME.fullmatch(name) and name not in _RESERVED_ARGS
    }


def _version_note(project: PythonProject) -> str:
    source = "default" if project.version_source == "default" else f"from {project.version_source}"
    return f"Python {project.version} ({source})"
