"""Detection order (Dockerfile, built-ins, the extra directory), the no-match error, and
user script buildpacks run for real."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from agent.build import catalog
from agent.build.errors import BuildpackBroken, NoBuildpackDetected
from agent.build.packs import PlanOptions
from agent.build.scripts import ScriptBuildpack, parse_processes
from agent.build.settings import BuildSettings
from agent.build.source import SourceTree
from agent.treefile import TreeFileRefused
from tests.build.conftest import APPS

SHIPPED = catalog.shipped_buildpacks_dir()


def detect(source: Path, extra: Path | None = None) -> tuple[str, str]:
    packs = catalog.buildpacks(SHIPPED, extra, 10.0)
    pack, reason = catalog.detect(SourceTree(source), packs, "demo")
    return pack.name, reason


@pytest.mark.parametrize(
    ("app", "builder", "reason"),
    [
        ("flask", "python", "requirements.txt"),
        ("django", "python", "requirements.txt"),
        ("broken", "python", "requirements.txt"),
        ("express", "node", "package.json"),
        ("static", "static", "index.html"),
        ("dockerfile", "dockerfile", "Dockerfile"),
    ],
)
def test_sample_apps_are_detected(app: str, builder: str, reason: str) -> None:
    assert detect(APPS / app) == (builder, reason)


def test_dockerfile_wins_over_every_buildpack(tmp_path: Path) -> None:
    for name in ("requirements.txt", "package.json", "index.html"):
        (tmp_path / name).write_text("{}")
    assert detect(tmp_path)[0] == "python"  # the first built-in that matches
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert detect(tmp_path) == ("dockerfile", "Dockerfile")


def test_built_in_order_is_python_node_static() -> None:
    names = [p.name for p in catalog.buildpacks(SHIPPED, None, 10.0)]
    assert names == ["dockerfile", "python", "node", "static"]


def test_no_match_lists_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("just words")
    with pytest.raises(NoBuildpackDetected) as caught:
        detect(tmp_path)
    message = str(caught.value)
    assert message.startswith("demo: cannot tell how to build this app; looked for: ")
    for wanted in (
        "Dockerfile",
        "requirements.txt",
        "Pipfile",
        "pyproject.toml",
        "package.json",
        "index.html",
        "public/",
    ):
        assert wanted in message
    assert "\n" not in message
    assert [entry.split(":")[0] for entry in caught.value.looked_for] == [
        "dockerfile",
        "python",
        "node",
        "static",
    ]


def write_script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_rust_pack(root: Path, name: str = "50-rust") -> Path:
    pack = root / name
    write_script(pack / "bin" / "detect", '[ -f "$1/Cargo.toml" ] && echo "Cargo.toml"\n')
    write_script(
        pack / "bin" / "dockerfile",
        'echo "FROM rust:1"\necho "# app=$BERTH_APP"\nprintf "%s\\n" "$BERTH_CA_SETUP"\n'
        'echo "RUN ${BERTH_WITH_CA}cargo build --release"\n',
    )
    write_script(
        pack / "bin" / "processes",
        'echo "web: ./target/release/app --port \\$PORT"\n'
        'echo "# comment"\necho "worker: ./target/release/worker"\n',
    )
    (pack / "include").mkdir()
    (pack / "include" / "run.sh").write_text("#!/bin/sh\n")
    (pack / "include" / "run.sh").chmod(0o755)
    (pack / "buildpack.toml").write_text('looks_for = "Cargo.toml"\n')
    return pack


def test_user_buildpack_from_the_extra_directory(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    make_rust_pack(extra)
    app = tmp_path / "app"
    app.mkdir()
    (app / "Cargo.toml").write_text("[package]\n")
    assert detect(app, extra) == ("rust", "Cargo.toml")

    packs = catalog.buildpacks(SHIPPED, extra, 10.0)
    pack, _ = catalog.detect(SourceTree(app), packs, "demo")
    plan = pack.plan(SourceTree(app), PlanOptions("demo", BuildSettings(), {}, trust_ca=True))
    assert plan.builder == "rust"
    assert plan.dockerfile is not None and plan.dockerfile.startswith("FROM rust:1\n# app=demo\n")
    assert "COPY berth/ca/ /opt/berth/ca/" in plan.dockerfile
    assert "RUN /opt/berth/ca/with-ca cargo build --release" in plan.dockerfile
    assert plan.default_processes == {
        "web": "./target/release/app --port $PORT",
        "worker": "./target/release/worker",
    }
    assert plan.files["berth/buildpack/run.sh"].mode == 0o755


def test_built_ins_are_asked_before_the_extra_directory(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    pack = make_rust_pack(extra)
    write_script(pack / "bin" / "detect", "echo always\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("")
    assert detect(app, extra) == ("static", "index.html")
    (app / "index.html").unlink()
    assert detect(app, extra) == ("rust", "always")


def test_no_match_names_user_buildpacks_too(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    make_rust_pack(extra)
    (tmp_path / "app").mkdir()
    with pytest.raises(NoBuildpackDetected, match="rust: Cargo.toml"):
        detect(tmp_path / "app", extra)


@pytest.mark.parametrize(
    ("detect_body", "problem"),
    [
        ("exit 3\n", "bin/detect exited 3"),
        ("echo oops >&2; exit 2\n", "bin/detect exited 2: oops"),
        ("sleep 5\n", "took longer than 0.5 s"),
    ],
)
def test_broken_detect_is_reported_not_skipped(
    tmp_path: Path, detect_body: str, problem: str
) -> None:
    pack_dir = make_rust_pack(tmp_path / "extra")
    write_script(pack_dir / "bin" / "detect", detect_body)
    pack = ScriptBuildpack(pack_dir, "rust", "Cargo.toml", timeout=0.5)
    with pytest.raises(BuildpackBroken) as caught:
        pack.detect(SourceTree(tmp_path))
    assert str(caught.value).startswith("buildpack rust: ")
    assert problem in str(caught.value)


def test_dockerfile_script_must_print_a_dockerfile(tmp_path: Path) -> None:
    pack_dir = make_rust_pack(tmp_path / "extra")
    write_script(pack_dir / "bin" / "dockerfile", "echo hello\n")
    pack = ScriptBuildpack(pack_dir, "rust", "Cargo.toml", timeout=5)
    with pytest.raises(BuildpackBroken, match="no FROM line"):
        pack.plan(SourceTree(tmp_path), PlanOptions("demo", BuildSettings(), {}))


def test_scripts_get_a_fixed_environment(tmp_path: Path) -> None:
    pack_dir = make_rust_pack(tmp_path / "extra")
    write_script(pack_dir / "bin" / "detect", "env | sort\n")
    os.environ["BERTH_TEST_LEAK"] = "1"
    try:
        reason = ScriptBuildpack(pack_dir, "rust", "", 5).detect(SourceTree(tmp_path))
    finally:
        del os.environ["BERTH_TEST_LEAK"]
    assert reason is not None and "BERTH_TEST_LEAK" not in reason


def test_directory_without_scripts_is_refused(tmp_path: Path) -> None:
    (tmp_path / "extra" / "half").mkdir(parents=True)
    with pytest.raises(BuildpackBroken, match="needs bin/detect and bin/dockerfile"):
        catalog.buildpacks(SHIPPED, tmp_path / "extra", 5)
    shutil.rmtree(tmp_path / "extra" / "half")
    (tmp_path / "extra" / "odd").mkdir()
    (tmp_path / "extra" / "odd" / "buildpack.toml").write_text('builtin = "cobol"\n')
    with pytest.raises(BuildpackBroken, match="unknown builtin 'cobol'"):
        catalog.buildpacks(SHIPPED, tmp_path / "extra", 5)


def test_parse_processes_rejects_garbage() -> None:
    assert parse_processes("web: a b\n\n# x\nclock:  c\n", "p") == {"web": "a b", "clock": "c"}
    with pytest.raises(BuildpackBroken, match="line 1"):
        parse_processes("not a process line\n", "p")


@pytest.mark.parametrize("hostile", ["link out", "fifo"])
def test_a_script_buildpack_never_sees_a_tree_that_leads_out(tmp_path: Path, hostile: str) -> None:
    pack_dir = make_rust_pack(tmp_path / "extra")
    marker = tmp_path / "ran"
    write_script(pack_dir / "bin" / "detect", f"touch {marker}; cat Cargo.toml\n")
    source = tmp_path / "src"
    (source / "deep").mkdir(parents=True)
    if hostile == "link out":
        (source / "deep" / "Cargo.toml").symlink_to("/dev/zero")
        (source / "Cargo.toml").symlink_to("deep/Cargo.toml")
    else:
        os.mkfifo(source / "deep" / "pipe")
    with pytest.raises(TreeFileRefused, match="^pushed file .* refused: "):
        ScriptBuildpack(pack_dir, "rust", "Cargo.toml", timeout=5).detect(SourceTree(source))
    assert not marker.exists()
