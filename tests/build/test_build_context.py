"""The build context tar: app/ and berth/ for buildpack builds, the tree as it is for
Dockerfile apps, .dockerignore honoured, symlinks never followed."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from agent.build.context import dockerfile_path, write_context
from agent.build.model import BuildPlan, ContextFile


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("print('hi')\n")
    (root / "pkg" / "mod.py").write_text("")
    (root / "secret.log").write_text("noise")
    (root / ".dockerignore").write_text("# comment\n*.log\n")
    (root / "escape").symlink_to("/etc/passwd")
    return root


def members(plan: BuildPlan, source: Path) -> dict[str, tarfile.TarInfo]:
    buffer = io.BytesIO()
    write_context(plan, source, buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive:
        return {m.name: m for m in archive.getmembers()}


def test_buildpack_context_layout(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    plan = BuildPlan(
        builder="python",
        dockerfile="FROM x\n",
        files={"berth/ca/with-ca": ContextFile(b"#!/bin/sh\n", 0o755)},
    )
    found = members(plan, source)
    assert dockerfile_path(plan) == "berth/Dockerfile"
    assert {
        "app",
        "app/app.py",
        "app/pkg",
        "app/pkg/mod.py",
        "berth/Dockerfile",
        "berth/ca/with-ca",
    } <= set(found)
    assert "app/secret.log" not in found  # .dockerignore
    assert found["berth/ca/with-ca"].mode == 0o755
    link = found["app/escape"]
    assert link.issym() and link.linkname == "/etc/passwd" and link.size == 0
    assert found["app/app.py"].uid == 0


def test_dockerfile_app_context_is_the_tree(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    (source / "Dockerfile").write_text("FROM x\n")
    plan = BuildPlan(builder="dockerfile", dockerfile=None)
    found = members(plan, source)
    assert dockerfile_path(plan) == "Dockerfile"
    assert {"Dockerfile", "app.py", "pkg/mod.py", ".dockerignore"} <= set(found)
    assert not any(name.startswith(("app/", "berth/")) for name in found)
    assert "secret.log" not in found


def test_source_tree_is_not_modified(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    before = sorted(p.name for p in source.rglob("*"))
    members(BuildPlan(builder="python", dockerfile="FROM x\n"), source)
    assert sorted(p.name for p in source.rglob("*")) == before
