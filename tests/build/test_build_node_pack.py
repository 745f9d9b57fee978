"""The node buildpack's pure parts: versions, package managers, the Dockerfile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.build.errors import InvalidSource
from agent.build.packs import PlanOptions
from agent.build.packs.node import NodeBuildpack, inspect, node_version, render
from agent.build.settings import BuildSettings
from agent.build.source import SourceTree


def tree(tmp_path: Path, package: dict[str, Any] | None, files: tuple[str, ...] = ()) -> SourceTree:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if package is not None:
        (tmp_path / "package.json").write_text(json.dumps(package))
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.write_text("")
    return SourceTree(tmp_path)


def options(trust: bool = False) -> PlanOptions:
    return PlanOptions("demo", BuildSettings(), {}, trust_ca=trust)


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        (None, "20"),
        ("", "20"),
        ("*", "20"),
        ("18", "18"),
        ("18.x", "18"),
        ("^18.2.0", "18"),
        ("~16.14", "16"),
        ("22.3.1", "22.3.1"),
        ("v22", "22"),
        (">=18", "20"),
        (">=21", "21"),
        (">20", "21"),
        (">=16 <21", "20"),
        ("16 || 18.x", "18"),
    ],
)
def test_node_version_from_engines(spec: str | None, version: str) -> None:
    assert node_version(spec, "20")[0] == version


def test_unusable_engine_is_one_clear_error() -> None:
    with pytest.raises(InvalidSource, match="^package.json: engines.node 'banana'"):
        node_version("banana", "20")


@pytest.mark.parametrize(
    ("files", "manager", "install"),
    [
        ((), "npm", "RUN npm install"),
        (("package-lock.json",), "npm", "RUN npm ci"),
        (("npm-shrinkwrap.json",), "npm", "RUN npm ci"),
        (("yarn.lock",), "yarn", "RUN yarn install --frozen-lockfile"),
        (("yarn.lock", ".yarnrc.yml", ".yarn/releases/"), "yarn", "RUN yarn install --immutable"),
        (("pnpm-lock.yaml",), "pnpm", "RUN pnpm install --frozen-lockfile"),
    ],
)
def test_manager_by_lockfile(
    tmp_path: Path, files: tuple[str, ...], manager: str, install: str
) -> None:
    project = inspect(tree(tmp_path, {"name": "x"}, files), "20")
    assert project.manager == manager
    lines = (render(project, options()).dockerfile or "").splitlines()
    assert install in lines
    assert lines.index(install) < lines.index('COPY --chown=berth:berth ["app/", "./"]')


def test_yarn_berry_copies_its_release_before_install(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {}, ("yarn.lock", ".yarnrc.yml", ".yarn/releases/")), "20")
    lines = (render(project, options()).dockerfile or "").splitlines()
    copy = 'COPY --chown=berth:berth ["app/.yarn/releases", "./.yarn/releases/"]'
    assert lines.index(copy) < lines.index("RUN yarn install --immutable")


def test_package_manager_field_without_lockfile(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"packageManager": "pnpm@8.15.4+sha256.abc"}), "20")
    assert (project.manager, project.manager_version) == ("pnpm", "8.15.4+sha256.abc")
    dockerfile = render(project, options()).dockerfile or ""
    assert "npm install --global pnpm@8.15.4+sha256.abc" in dockerfile


def test_tools_are_installed_as_root_before_dropping_privileges(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {}, ("yarn.lock",)), "20")
    lines = (render(project, options(trust=True)).dockerfile or "").splitlines()
    tool = next(i for i, line in enumerate(lines) if "npm install --global yarn@1" in line)
    assert "/opt/berth/ca/with-ca npm install --global yarn@1" in lines[tool]
    assert tool < lines.index("USER berth")


def test_build_script_installs_dev_dependencies_then_prunes(tmp_path: Path) -> None:
    package = {"scripts": {"build": "tsc", "start": "node dist/index.js"}}
    project = inspect(tree(tmp_path, package, ("package-lock.json",)), "20")
    plan = render(project, options())
    lines = (plan.dockerfile or "").splitlines()
    assert "RUN npm ci --include=dev" in lines
    assert lines[-1] == "RUN npm run build && npm prune --omit=dev"
    # The CMD sits before the code's COPY, where the cache keeps it across pushes.
    assert lines.index('CMD ["/bin/sh", "-c", "exec npm start"]') < lines.index(
        'COPY --chown=berth:berth ["app/", "./"]')
    assert plan.default_processes == {"web": "npm start"}


def test_heroku_postbuild_wins_over_build(tmp_path: Path) -> None:
    package = {"scripts": {"build": "a", "heroku-postbuild": "b"}}
    assert inspect(tree(tmp_path, package), "20").build_script == "heroku-postbuild"


@pytest.mark.parametrize(
    ("package", "files", "web"),
    [
        ({"scripts": {"start": "node index.js"}}, (), "npm start"),
        ({}, ("server.js",), "npm start"),
        ({"main": "lib/app.js"}, ("lib/app.js",), "node lib/app.js"),
        ({"main": "missing.js"}, (), None),
    ],
)
def test_default_web(
    tmp_path: Path, package: dict[str, Any], files: tuple[str, ...], web: str | None
) -> None:
    plan = render(inspect(tree(tmp_path, package, files), "20"), options())
    assert plan.default_processes == ({"web": web} if web else {})


def test_workspaces_copy_the_tree_before_install(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"workspaces": ["packages/*"]}, ("package-lock.json",)), "20")
    lines = (render(project, options()).dockerfile or "").splitlines()
    assert lines.index('COPY --chown=berth:berth ["app/", "./"]') < lines.index("RUN npm ci")


def test_image_from_template(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"engines": {"node": "18.x"}}), "20")
    assert "FROM node:18-slim" in (render(project, options()).dockerfile or "")


def test_invalid_package_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{not json")
    with pytest.raises(InvalidSource, match="^package.json: not valid JSON"):
        inspect(SourceTree(tmp_path), "20")
    assert NodeBuildpack().detect(SourceTree(tmp_path)) == "package.json"


@pytest.mark.parametrize(
    ("lock", "pnpm"),
    [
        ("lockfileVersion: '6.0'\n", "pnpm@8"),
        ("lockfileVersion: 5.4\n", "pnpm@7"),
        ("lockfileVersion: '9.0'\n", "pnpm@9"),
        ("garbage\n", "pnpm@latest"),
    ],
)
def test_pnpm_version_follows_the_lockfile(tmp_path: Path, lock: str, pnpm: str) -> None:
    tree(tmp_path, {"name": "x"})
    (tmp_path / "pnpm-lock.yaml").write_text(lock)
    project = inspect(SourceTree(tmp_path), "20")
    assert f"npm install --global {pnpm}" in (render(project, options()).dockerfile or "")
