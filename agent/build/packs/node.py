"""The node buildpack: package.json, with npm, yarn or pnpm chosen by lockfile.

`inspect` reads package.json and the lockfiles into a `NodeProject`; `render` is pure.
Conventions kept from Heroku's Node.js buildpack:
- the Node version comes from `engines.node` (a range picks its major version);
- the package manager is the one whose lockfile is there (pnpm-lock.yaml, yarn.lock,
  package-lock.json), else `packageManager`, else npm;
- a `heroku-postbuild` script, else a `build` script, runs after the install (with dev
  dependencies installed for it, pruned afterwards where the manager can);
- the default web process is `npm start` (or yarn/pnpm's) when there is a start script
  or a server.js.
Dependencies are installed from the manifest and lockfile alone before the rest of the
tree is copied, so a push that changes only code reuses that layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agent.build import ca, dockerfile
from agent.build.errors import InvalidSource
from agent.build.model import BuildPlan
from agent.build.packs import PlanOptions, image_for
from agent.build.source import SourceTree

LOCKFILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)
_COMPARATOR = re.compile(r"^(>=|>|\^|~|=|v)?\s*(\d+)(?:\.(\d+|x|X|\*))?(?:\.(\d+|x|X|\*))?$")
_PNPM_LOCK_VERSION = re.compile(r"^lockfileVersion:\s*['\"]?(\d+)(?:\.(\d+))?", re.MULTILINE)
# pnpm reads only its own lockfile generation: lockfileVersion -> the pnpm that wrote it.
_PNPM_FOR_LOCKFILE = {5: "7", 6: "8", 7: "9", 9: "9"}
_MANAGER = re.compile(r"^(npm|yarn|pnpm)@(\d+(?:\.\d+){0,2}(?:[-+][\w.]+)?)")


@dataclass(frozen=True)
class NodeProject:
    manager: str  # "npm" | "yarn" | "pnpm"
    lockfile: str | None
    version: str  # image version: a major ("20") or an exact "20.11.1"
    version_source: str  # "engines.node" or "default"
    dependency_files: tuple[str, ...] = ("package.json",)
    dependency_dirs: tuple[str, ...] = ()  # e.g. .yarn/releases for yarn berry
    manager_version: str | None = None  # from packageManager ("pnpm@8.15.4")
    yarn_berry: bool = False
    workspaces: bool = False  # install needs every workspace: copy the tree first
    build_script: str | None = None  # "heroku-postbuild" | "build"
    web: str | None = None


class NodeBuildpack:
    name = "node"
    looks_for = "package.json"

    def detect(self, tree: SourceTree) -> str | None:
        return "package.json" if tree.is_file("package.json") else None

    def plan(self, tree: SourceTree, options: PlanOptions) -> BuildPlan:
        return render(inspect(tree, options.settings.node_version), options)


def node_version(spec: str | None, default: str) -> tuple[str, str]:
    """The image version for an `engines.node` range (pure).

    "20", "20.x", "^20.1", "~20.1" pick major 20; an exact "20.11.1" is kept; ">=18"
    takes the default when it satisfies the bound, else 18; "a || b" takes the highest.
    """
    if spec is None or spec.strip() in ("", "*", "x", "latest", "lts", "lts/*"):
        return default, "default"
    picks = []
    for alternative in spec.split("||"):
        first = alternative.strip().split()[0] if alternative.strip() else ""
        match = _COMPARATOR.match(first)
        if not match:
            raise InvalidSource(
                "package.json", f'engines.node {spec!r}: cannot pick a Node version (try "20.x")'
            )
        operator, major = match.group(1) or "", match.group(2)
        if operator in (">=", ">"):
            # ">20" means above every 20.x (semver X-ranges), so 21 at least.
            floor = int(major) + (1 if operator == ">" else 0)
            picks.append(default if int(default.split(".")[0]) >= floor else str(floor))
        elif not operator and match.group(3) and match.group(4) and match.group(4).isdigit():
            picks.append(f"{major}.{match.group(3)}.{match.group(4)}")
        else:
            picks.append(major)
    return max(picks, key=lambda v: tuple(int(p) for p in v.split("."))), "engines.node"


def pnpm_for_lockfile(text: str) -> str | None:
    """The pnpm major version that reads a pnpm-lock.yaml (None: unknown, take latest)."""
    found = _PNPM_LOCK_VERSION.search(text)
    return _PNPM_FOR_LOCKFILE.get(int(found.group(1))) if found else None


def _package_json(tree: SourceTree) -> dict[str, Any]:
    text = tree.read_text("package.json")
    if text is None:
        raise InvalidSource("package.json", "missing or unreadable")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSource("package.json", f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidSource("package.json", "must hold a JSON object")
    return data


def _string_map(data: dict[str, Any], key: str) -> dict[str, str]:
    value = data.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def inspect(tree: SourceTree, default_version: str) -> NodeProject:
    package = _package_json(tree)
    engines = _string_map(package, "engines")
    version, version_source = node_version(engines.get("node"), default_version)
    lockfile, manager = next(((f, m) for f, m in LOCKFILES if tree.is_file(f)), (None, "npm"))
    declared = _MANAGER.match(str(package.get("packageManager", "")))
    manager_version = None
    if declared and (lockfile is None or declared.group(1) == manager):
        manager, manager_version = declared.group(1), declared.group(2)
    elif manager == "pnpm" and lockfile is not None:
        manager_version = pnpm_for_lockfile(tree.read_head(lockfile, 4096) or "")
    berry = manager == "yarn" and tree.is_file(".yarnrc.yml")
    files = ["package.json"] + ([lockfile] if lockfile else [])
    for extra in (".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs"):
        if tree.is_file(extra):
            files.append(extra)
    dirs = tuple(
        d for d in (".yarn/releases", ".yarn/plugins", ".yarn/patches") if berry and tree.is_dir(d)
    )
    scripts = _string_map(package, "scripts")
    build = next((s for s in ("heroku-postbuild", "build") if s in scripts), None)
    return NodeProject(
        manager=manager,
        lockfile=lockfile,
        version=version,
        version_source=version_source,
        dependency_files=tuple(files),
        dependency_dirs=dirs,
        manager_version=manager_version,
        yarn_berry=berry,
        workspaces="workspaces" in package,
        build_script=build,
        web=default_web(tree, manager, scripts, package.get("main")),
    )


def default_web(
    tree: SourceTree, manager: str, scripts: dict[str, str], main: object
) -> str | None:
    if "start" in scripts or tree.is_file("server.js"):
        return f"{manager} start"
    if isinstance(main, str) and tree.is_file(main) and dockerfile.copyable(main):
        return f"node {main}"
    return None


# --- rendering ---------------------------------------------------------------------


def render(project: NodeProject, options: PlanOptions) -> BuildPlan:
    """The Dockerfile for `project` (pure)."""
    trust = options.trust_ca
    lock_note = f", {project.lockfile}" if project.lockfile else ""
    lines = [
        f"# Generated by Berth's node buildpack ({project.manager}{lock_note}).",
        f"FROM {image_for(options.settings.node_image, project.version)}",
        dockerfile.labels(options.app, "node"),
        dockerfile.env(
            {
                "NODE_ENV": "production",
                "HOME": dockerfile.HOME_DIR,
                "PORT": str(dockerfile.CONTAINER_PORT),
                "npm_config_update_notifier": "false",
                "npm_config_fund": "false",
                "npm_config_audit": "false",
                "npm_config_progress": "false",
            }
        ),
        dockerfile.create_user(),
    ]
    if trust:
        lines += ca.dockerfile_lines()
    tool = _tool_install(project, trust)
    if tool:
        lines.append(tool)
    lines += [f"USER {dockerfile.APP_USER}", f"WORKDIR {dockerfile.APP_DIR}"]
    install = "RUN " + ca.wrap(_install_command(project), trust)
    # CMD before the code's COPY: cached there, one layer commit less per push.
    code = [*dockerfile.cmd_lines(project.web), dockerfile.code_copy()]
    if project.workspaces:
        lines += [*code, install]
    else:
        lines += dockerfile.copy_dependency_files(project.dependency_files)
        lines += [dockerfile.copy_source([d], f"./{d}/") for d in project.dependency_dirs]
        lines += [install, *code]
    notes = [
        f"Node.js {project.version} ({'default' if project.version_source == 'default' else 'from engines.node'})",
        f"Installing dependencies with {project.manager}"
        + (f" ({project.lockfile})" if project.lockfile else " (no lockfile)"),
    ]
    if project.build_script:
        lines.append("RUN " + ca.wrap(_build_command(project), trust))
        notes.append(f"Running the {project.build_script} script")
    if not project.web:
        notes.append("No default web process: add a start script, a server.js or a Procfile")
    return BuildPlan(
        builder="node",
        dockerfile=dockerfile.render(lines),
        default_processes={"web": project.web} if project.web else {},
        notes=tuple(notes),
        labelled=True,
    )


def _tool_install(project: NodeProject, trust: bool) -> str | None:
    """Installs yarn or pnpm (as root) when the base image lacks it."""
    if project.manager == "npm":
        return None
    if project.manager == "yarn":
        package = "yarn@1"  # classic; it hands over to a berry repo's own .yarn/releases
    else:
        package = f"pnpm@{project.manager_version or 'latest'}"
    install = ca.wrap(f"npm install --global {package}", trust)
    return f"RUN command -v {project.manager} >/dev/null 2>&1 || {install}"


def _install_command(project: NodeProject) -> str:
    dev = project.build_script is not None
    if project.manager == "npm":
        base = "npm ci" if project.lockfile else "npm install"
        return base + (" --include=dev" if dev else "")
    if project.manager == "yarn":
        if project.yarn_berry:
            return "yarn install --immutable" if project.lockfile else "yarn install"
        base = "yarn install --frozen-lockfile" if project.lockfile else "yarn install"
        return base + (" --production=false" if dev else "")
    base = "pnpm install --frozen-lockfile" if project.lockfile else "pnpm install"
    return ("NODE_ENV=development " if dev else "") + base


def _build_command(project: NodeProject) -> str:
    script = project.build_script
    if project.manager == "npm":
        return f"npm run {script} && npm prune --omit=dev"
    if project.manager == "pnpm":
        return f"pnpm run {script} && pnpm prune --prod"
    return f"yarn run {script}"
