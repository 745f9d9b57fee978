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

import re
from dataclasses import dataclass, field, replace
from typing import Any

from agent.build import ca, dockerfile
from agent.build.errors import InvalidSource
from agent.build.model import CONTEXT_BERTH, BuildPlan, ContextFile
from agent.build.packs import PlanOptions, image_for, is_set, python_native
from agent.build.packs.python_deps import (
    names_of,
    normalise,
    pep621_dependencies,
    read_requirements,
    read_toml,
    table_keys,
)
from agent.build.packs.python_web import default_web, django_project
from agent.build.source import SourceTree

__all__ = ["PythonBuildpack", "PythonProject", "inspect", "normalise", "python_version", "render"]

MANIFESTS = ("requirements.txt", "Pipfile", "pyproject.toml")
VENV = "/opt/venv"
TOOLS = "/opt/berth/tools"

_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")
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
    web_reason: str = ""  # why that command, or why none
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
        pipfile = read_toml(tree, "Pipfile")
        lock = tree.is_file("Pipfile.lock")
        project = PythonProject(
            manager="pipenv",
            manifest="Pipfile",
            dependency_files=("Pipfile", "Pipfile.lock") if lock else ("Pipfile",),
            packages=frozenset(table_keys(pipfile.get("packages"))),
            has_lock=lock,
            **common,
        )
    else:
        project = _from_pyproject(tree, common)
    return _with_app_facts(tree, project)


def _from_pyproject(tree: SourceTree, common: dict[str, Any]) -> PythonProject:
    pyproject = read_toml(tree, "pyproject.toml")
    tool = pyproject.get("tool", {})
    deps = pep621_dependencies(pyproject)
    if tree.is_file("poetry.lock") or (isinstance(tool, dict) and "poetry" in tool):
        poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
        names = names_of(deps) | table_keys(
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
            packages=frozenset(names_of(deps)),
            **common,
        )
    return PythonProject(
        manager="pyproject",
        manifest="pyproject.toml",
        dependency_files=(),
        packages=frozenset(names_of(deps)),
        requirements=tuple(deps),
        **common,
    )


def _with_app_facts(tree: SourceTree, project: PythonProject) -> PythonProject:
    django = None
    if tree.is_file("manage.py") and "django" in project.packages:
        django = django_project(tree)
    web = default_web(tree, project.packages, django)
    return replace(project, django_project=django, web=web.command, web_reason=web.reason)


# --- rendering ---------------------------------------------------------------------


def _collectstatic(
    project: PythonProject, options: PlanOptions, lines: list[str], notes: list[str]
) -> dict[str, str]:
    """A Django app's collectstatic step, appended to `lines`; the build args it needs."""
    if project.django_project is None:
        return {}
    settings = options.settings
    if not settings.collectstatic or is_set(options.env, "DISABLE_COLLECTSTATIC"):
        notes.append("Django app: collectstatic disabled")
        return {}
    buildargs = _build_args(options) if settings.config_vars_at_build else {}
    lines += dockerfile.build_args(sorted(buildargs))
    lines.append("RUN python manage.py collectstatic --noinput")
    notes.append("Django app: running manage.py collectstatic --noinput")
    return buildargs


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
    native = python_native.needs_of(project.packages)
    system_install = python_native.install_line(native)
    if system_install is not None:
        lines.append(system_install)
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
    notes = [
        _version_note(project),
        f"Installing dependencies with {project.manager} ({project.manifest})",
    ]
    if native.any:
        notes.append(native.describe())
    buildargs = _collectstatic(project, options, lines, notes)
    processes = {"web": project.web} if project.web else {}
    if project.web:
        notes.append(f"Default web process: {project.web} ({project.web_reason})")
    else:
        notes.append(f"No default web process: {project.web_reason or 'add a Procfile'}")
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
