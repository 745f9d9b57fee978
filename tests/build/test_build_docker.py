"""Real builds of the sample apps with the real Docker engine, on the stand-in base image.

Each sample is built once per module and shared; what a test checks is the image
actually running (HTTP on PORT through a port published on 127.0.0.1), the engine's own
account of the build (cached steps, layer ids), or the error a failed build raises.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.build import (
    Builder,
    BuildFailed,
    BuildRequest,
    BuildTimedOut,
    NoBuildpackDetected,
    NotEnoughDisk,
)
from tests.build.conftest import APPS, BuildRun, Lab, copy_app, fetch, stand_in_settings
from tests.conftest import STAND_IN_IMAGE

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def flask_build(lab: Lab) -> BuildRun:
    return lab.build(APPS / "flask", name="flask")


@pytest.fixture(scope="module")
def express_build(lab: Lab) -> BuildRun:
    return lab.build(APPS / "express", name="express")


@pytest.fixture(scope="module")
def static_build(lab: Lab) -> BuildRun:
    return lab.build(APPS / "static", name="static")


@pytest.fixture(scope="module")
def django_build(lab: Lab) -> BuildRun:
    return lab.build(APPS / "django", name="django")


def step(run: BuildRun, fragment: str) -> Any:
    matches = [s for s in run.image.steps if fragment in s.instruction]
    assert len(matches) == 1, (fragment, run.image.steps)
    return matches[0]


def test_flask_app_builds_and_serves_on_port(flask_build: BuildRun, lab: Lab) -> None:
    image = flask_build.image
    assert image.builder == "python"
    assert image.image_id.startswith("sha256:")
    assert image.default_processes == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}
    assert flask_build.lines[0] == "-----> Python app detected (requirements.txt)"
    assert any("with-ca pip install -r requirements.txt" in line for line in flask_build.lines)
    with lab.serve(image.tag, image.default_processes["web"]) as url:
        assert fetch(url + "/") == (200, "hello from flask on port 5000\n")
    # The Procfile's own web command runs in the image just as well.
    procfile_web = "gunicorn app:app --bind 0.0.0.0:$PORT --workers 2"
    with lab.serve(image.tag, procfile_web, env={"GREETING": "hi"}) as url:
        assert fetch(url + "/") == (200, "hi from flask on port 5000\n")


def test_flask_image_runs_unprivileged_and_dotenv_is_only_a_file(
    flask_build: BuildRun, lab: Lab
) -> None:
    tag = flask_build.image.tag
    assert lab.run(tag, ["id", "-un"]).strip() == "berth"
    assert "GREETING=from-dotenv" in lab.run(tag, ["cat", "/app/.env"])
    env = lab.client.images.get(tag).attrs["Config"]["Env"]
    assert "PORT=5000" in env
    assert not any(entry.startswith("GREETING=") for entry in env)
    labels = lab.client.images.get(tag).attrs["Config"]["Labels"]
    assert labels["berth.app"] == "flask" and labels["berth.builder"] == "python"


def test_express_app_builds_and_serves(express_build: BuildRun, lab: Lab) -> None:
    image = express_build.image
    assert image.builder == "node"
    assert image.default_processes == {"web": "npm start"}
    assert "       Installing dependencies with npm (package-lock.json)" in express_build.lines
    with lab.serve(image.tag, "npm start") as url:
        assert fetch(url + "/") == (200, "hello from express on port 5000\n")


def test_static_site_served_by_nginx_on_port(static_build: BuildRun, lab: Lab) -> None:
    image = static_build.image
    assert image.builder == "static"
    with lab.serve(image.tag, image.default_processes["web"], env={"PORT": "5000"}) as url:
        status, body = fetch(url + "/")
        assert status == 200 and "hello from a static site" in body
        assert fetch(url + "/style.css")[0] == 200
        assert fetch(url + "/.env")[0] == 404  # a repository file, never served
        assert fetch(url + "/missing")[0] == 404
    # The image's CMD is the same web server (what `docker run IMAGE` does).
    with lab.serve(image.tag, None) as url:
        assert "hello from a static site" in fetch(url + "/")[1]


def test_dockerfile_wins_and_its_cmd_is_the_web_process(lab: Lab) -> None:
    run = lab.build(APPS / "dockerfile", name="dockerfile")
    assert run.image.builder == "dockerfile"
    assert run.image.default_processes == {}
    assert run.lines[0] == "-----> Dockerfile found: building it"
    with lab.serve(run.image.tag, None) as url:
        assert fetch(url + "/") == (200, "hello from a Dockerfile\n")


def test_django_collectstatic_runs_at_build_time(django_build: BuildRun, lab: Lab) -> None:
    image = django_build.image
    assert "       Django app: running manage.py collectstatic --noinput" in django_build.lines
    assert any("static file copied to '/app/staticfiles'" in line for line in django_build.lines)
    assert lab.run(image.tag, ["cat", "/app/staticfiles/css/site.css"]) == "body { color: #333; }\n"
    with lab.serve(image.tag, image.default_processes["web"]) as url:
        assert fetch(url + "/") == (200, "hello from django\n")


def test_no_base_is_announced_when_something_runs_after_the_code(
    django_build: BuildRun, lab: Lab
) -> None:
    assert django_build.bases == []  # collectstatic runs after the code's COPY
    own = lab.build(APPS / "dockerfile", name="own")
    assert own.bases == []  # an app's own Dockerfile: nothing known about its steps


def test_disable_collectstatic_config_var(django_build: BuildRun, lab: Lab) -> None:
    run = lab.build(APPS / "django", name="django", env={"DISABLE_COLLECTSTATIC": "1"})
    assert "       Django app: collectstatic disabled" in run.lines
    assert "staticfiles" not in lab.run(run.image.tag, ["ls", "/app"]).split()
    # Same dependency layer as the build with collectstatic.
    assert step(run, "pip install").layer_id == step(django_build, "pip install").layer_id


def test_code_only_push_reuses_the_dependency_layer(tmp_path: Path, lab: Lab) -> None:
    source = copy_app("flask", tmp_path)
    first = lab.build(source, name="cache")
    (source / "app.py").write_text(
        (source / "app.py").read_text().replace("} from flask", "} via flask")
    )
    second = lab.build(source, name="cache")

    install_1, install_2 = step(first, "pip install"), step(second, "pip install")
    assert install_2.cached and install_2.layer_id == install_1.layer_id
    assert any(line.endswith("pip install -r requirements.txt (cached)") for line in second.lines)
    code_1, code_2 = step(first, '"app/", "./"'), step(second, '"app/", "./"')
    assert not code_2.cached and code_2.layer_id != code_1.layer_id
    # As the code's COPY began, the builder named the image it runs on (early start).
    (base,) = second.bases
    assert base.image == lab.client.api.inspect_image(second.image.image_id)["Parent"]
    assert base.image.startswith("sha256:") and base.builder == "python"
    assert dict(base.default_processes) == dict(second.image.default_processes)
    with lab.serve(second.image.tag, second.image.default_processes["web"]) as url:
        assert fetch(url + "/")[1] == "hello via flask on port 5000\n"

    # A change to the dependency file does rebuild the dependency layer.
    with (source / "requirements.txt").open("a") as handle:
        handle.write("# pinned for the test\n")
    third = lab.build(source, name="cache")
    assert not step(third, "pip install").cached


def test_broken_build_raises_build_failed_with_the_tail(lab: Lab) -> None:
    lines: list[str] = []
    with pytest.raises(BuildFailed) as caught:
        lab.build(APPS / "broken", name="broken", lines=lines)
    failure = caught.value
    assert failure.app == "broken"
    assert "pip install -r requirements.txt" in failure.step
    assert failure.reason == "exit code 1"
    assert "\n" not in str(failure)
    assert any("berth-test-no-such-package-7f3a9c" in line for line in failure.log_tail)
    assert any("berth-test-no-such-package-7f3a9c" in line for line in lines)
    assert not lab.client.images.list(name=lab.tags[-1])
    # What did build stays as cache for the next push (and the lab removes it).
    assert lab.client.images.get(failure.cache_layer).id.startswith("sha256:")


def test_ca_bundle_is_what_lets_installs_through(lab: Lab) -> None:
    # Without the host's bundle the intercepted TLS to PyPI is refused.
    with pytest.raises(BuildFailed) as caught:
        lab.build(APPS / "flask", name="no-ca", settings=stand_in_settings(ca_bundle=None))
    tail = "\n".join(caught.value.log_tail)
    assert "CERTIFICATE_VERIFY_FAILED" in tail or "SSLError" in tail, tail


def test_disk_check_refuses_before_building(lab: Lab) -> None:
    lines: list[str] = []
    settings = stand_in_settings(min_free_disk_mb=10**9)
    with pytest.raises(NotEnoughDisk) as caught:
        lab.build(APPS / "static", name="disk", settings=settings, lines=lines)
    root = lab.client.info()["DockerRootDir"]
    assert str(caught.value).startswith(f"not building: {root} has ")
    assert caught.value.needed_mb == 10**9
    assert lines == [] and not lab.client.images.list(name=lab.tags[-1])


def dockerfile_app(root: Path, *lines: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("\n".join([f"FROM {STAND_IN_IMAGE}", *lines]) + "\n")
    return root


def test_memory_and_cpu_limits_apply_to_build_steps(tmp_path: Path, lab: Lab) -> None:
    source = dockerfile_app(
        tmp_path / "limits",
        "RUN echo mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null"
        " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
        " cpus=$(cat /sys/fs/cgroup/cpuset.cpus.effective 2>/dev/null"
        " || cat /sys/fs/cgroup/cpuset/cpuset.cpus)",
    )
    settings = stand_in_settings(memory_mb=300, cpuset="0", cpu_shares=256)
    run = lab.build(source, name="limits", settings=settings)
    assert f"         mem={300 * 1024 * 1024} cpus=0" in run.lines


def test_deadline_stops_a_build_and_leaves_no_container(tmp_path: Path, lab: Lab) -> None:
    source = dockerfile_app(tmp_path / "slow", "RUN echo started && sleep 300")
    started = time.monotonic()
    lines: list[str] = []
    with pytest.raises(BuildTimedOut) as caught:
        lab.build(source, name="slow", settings=stand_in_settings(timeout=4.0), lines=lines)
    assert time.monotonic() - started < 60
    assert "stopped after 4 s (build.timeout)" in str(caught.value)
    assert "sleep 300" in caught.value.step
    assert any("started" in line for line in lines)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        leftovers = [
            c
            for c in lab.client.containers.list(all=True)
            if "sleep 300" in " ".join(c.attrs["Config"]["Cmd"] or [])
        ]
        if not leftovers:
            break
        time.sleep(0.5)
    assert leftovers == []


def write_script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_user_buildpack_dropped_into_the_extra_directory(tmp_path: Path, lab: Lab) -> None:
    pack = tmp_path / "packs" / "hello"
    write_script(pack / "bin" / "detect", '[ -f "$1/hello.txt" ] && echo hello.txt\n')
    write_script(
        pack / "bin" / "dockerfile",
        f"cat <<EOF\nFROM {STAND_IN_IMAGE}\nWORKDIR /app\nCOPY app/ ./\n"
        "COPY berth/buildpack/banner.txt ./banner.txt\nEOF\n",
    )
    write_script(pack / "bin" / "processes", 'echo "web: python3 -m http.server \\$PORT"\n')
    (pack / "include").mkdir()
    (pack / "include" / "banner.txt").write_text("made by the hello buildpack\n")
    source = tmp_path / "site"
    source.mkdir()
    (source / "hello.txt").write_text("hello from a user buildpack\n")

    run = lab.build(
        source, name="hello", settings=stand_in_settings(extra_buildpacks_dir=tmp_path / "packs")
    )
    assert run.image.builder == "hello"
    assert run.lines[0] == "-----> hello app detected (hello.txt)"
    assert run.image.default_processes == {"web": "python3 -m http.server $PORT"}
    with lab.serve(run.image.tag, run.image.default_processes["web"]) as url:
        assert fetch(url + "/hello.txt") == (200, "hello from a user buildpack\n")
        assert fetch(url + "/banner.txt") == (200, "made by the hello buildpack\n")


def test_nothing_to_build_is_one_clear_error(tmp_path: Path, lab: Lab) -> None:
    (tmp_path / "notes.md").write_text("no app here\n")
    with pytest.raises(NoBuildpackDetected, match="looked for: dockerfile: Dockerfile; python: "):
        lab.build(tmp_path, name="empty")


def test_parallel_limit_queues_builds_and_emit_stays_on_the_loop(tmp_path: Path, lab: Lab) -> None:
    sources = [shutil.copytree(APPS / "static", tmp_path / f"site{i}") for i in range(2)]
    builder = Builder(stand_in_settings(parallel=1), lab.client)
    threads: set[int] = set()
    outputs: list[list[str]] = [[], []]

    def sink(index: int) -> Any:
        def emit(line: str) -> None:
            threads.add(threading.get_ident())
            outputs[index].append(line)

        return emit

    async def both() -> list[Any]:
        requests = [
            BuildRequest(app=f"site{i}", source=sources[i], tag=lab.tag(f"site{i}"), env={})
            for i in range(2)
        ]
        return await asyncio.gather(*(builder.build(r, sink(i)) for i, r in enumerate(requests)))

    images = asyncio.run(both())
    assert [image.builder for image in images] == ["static", "static"]
    assert threads == {threading.get_ident()}
    waited = [
        i for i in range(2) if outputs[i][0].startswith("-----> Waiting for a free build slot")
    ]
    assert len(waited) == 1


def test_cancelled_build_stops_its_step_container(tmp_path: Path, lab: Lab) -> None:
    source = dockerfile_app(tmp_path / "cancel", "RUN echo begun && sleep 301")
    builder = Builder(stand_in_settings(), lab.client)
    request = BuildRequest(app="cancel", source=source, tag=lab.tag("cancel"), env={})

    async def build_then_cancel() -> None:
        begun = asyncio.Event()

        def emit(line: str) -> None:
            if "begun" in line:
                begun.set()

        task = asyncio.create_task(builder.build(request, emit))
        await asyncio.wait_for(begun.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(build_then_cancel())  # also waits for the worker thread to finish
    assert time.monotonic() - started < 60
    running = [
        c
        for c in lab.client.containers.list()
        if "sleep 301" in " ".join(c.attrs["Config"]["Cmd"] or [])
    ]
    assert running == []


@pytest.mark.parametrize(
    ("lines", "step", "reason"),
    [
        (("FROM berth-test-build/no-such-base:1",), "step 1/", "berth-test-build/no-such-base"),
        ((f"FROM {STAND_IN_IMAGE}", "FRM typo"), "", "unknown instruction"),
    ],
)
def test_dockerfile_errors_are_build_failures(
    tmp_path: Path, lab: Lab, lines: tuple[str, ...], step: str, reason: str
) -> None:
    source = tmp_path / "bad"
    source.mkdir()
    (source / "Dockerfile").write_text("\n".join(lines) + "\n")
    with pytest.raises(BuildFailed) as caught:
        lab.build(source, name="bad")
    assert caught.value.step.startswith(step)
    assert reason in str(caught.value).lower()
    assert "\n" not in str(caught.value)
