"""What killed builds leave in the engine is found by its label and removed."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.build import steplog
from agent.deploy.docker_runtime import DockerRuntime
from tests.conftest import STAND_IN_IMAGE

pytestmark = pytest.mark.docker


async def test_a_killed_builds_images_are_removed_and_releases_kept() -> None:
    import docker

    client = docker.from_env()
    app = f"leaktest-{secrets.token_hex(3)}"
    runtime = DockerRuntime(client, f"test-{secrets.token_hex(3)}")

    def build(step: str, tag: str | None) -> str:
        dockerfile = f"FROM {STAND_IN_IMAGE}\nLABEL berth.app={app}\nRUN {step}\n"
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag,
                                       rm=True, forcerm=True)
        return str(image.id)

    release = build("echo release > /r", f"berth/{app}:v1")
    leftover = build("echo killed midway > /k", None)  # untagged, as a killed build's
    try:
        await runtime.remove_build_leftovers(app)
        ids = {image.id for image in client.images.list(all=True,
                                                        filters={"label": f"berth.app={app}"})}
        assert release in ids and leftover not in ids
    finally:
        await runtime.remove_app_images(app)
        client.close()


# A build of the app's own Dockerfile, in a process of its own (the agent), whose id
# lines the test reads to know the build reached its sleeping step.
_AGENT = """
import asyncio, sys
from pathlib import Path
import docker
from agent.build import Builder, BuildRequest, BuildSettings
source, steps, app = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
builder = Builder(BuildSettings(min_free_disk_mb=0), docker.from_env(), steps)
asyncio.run(builder.build(BuildRequest(app, source, f"berth/{app}:v1", {}), print))
"""


def _build_killed_midway(tmp_path: Path, app: str, steps: Path) -> None:
    """Start the build, SIGKILL its process once the step after two layers runs."""
    source = tmp_path / "src"
    source.mkdir()
    token = secrets.token_hex(8)
    (source / "Dockerfile").write_text(
        f"FROM {STAND_IN_IMAGE}\nRUN echo {token} > /one\nRUN echo {token} > /two\n"
        "RUN sleep 120\n")
    repo = Path(__file__).resolve().parents[2]
    agent = subprocess.Popen([sys.executable, "-c", _AGENT, str(source), str(steps), app],
                             cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert agent.stdout is not None
        deadline = time.monotonic() + 60
        for line in agent.stdout:  # the process ends (EOF) if the build fails
            if "sleep 120" in line or time.monotonic() > deadline:
                break
        # Shown as its container starts; wait for the record of that container too.
        while len(steplog.recorded(steplog.records(steps, app))[1]) < 3:
            assert time.monotonic() < deadline, "the sleeping step's container is not recorded"
            time.sleep(0.05)
        assert agent.poll() is None, "the build ended on its own"
    finally:
        agent.kill()
        agent.wait(timeout=10)
        if agent.stdout is not None:
            agent.stdout.close()


@pytest.mark.parametrize("cleanup", ["boot", "destroy"])
async def test_a_killed_dockerfile_builds_step_images_are_removed(
    tmp_path: Path, cleanup: str,
) -> None:
    import docker

    client = docker.from_env()
    app = f"leaktest-{secrets.token_hex(3)}"
    steps = tmp_path / "build-steps"
    runtime = DockerRuntime(client, f"test-{secrets.token_hex(3)}", build_steps=steps)
    others = []
    try:
        other = f"FROM {STAND_IN_IMAGE}\nRUN echo {secrets.token_hex(8)} > /o\n"
        others.append(client.images.build(fileobj=io.BytesIO(other.encode()),
                                          tag=f"berth/{app}-other:v1", rm=True)[0].id)
        other = f"FROM {STAND_IN_IMAGE}\nRUN echo {secrets.token_hex(8)} > /o\n"
        others.append(client.images.build(fileobj=io.BytesIO(other.encode()),
                                          rm=True)[0].id)  # another build's leftover
        _build_killed_midway(tmp_path, app, steps)
        recorded, containers = steplog.recorded(steplog.records(steps, app))
        assert len(recorded) >= 3 and containers  # FROM's image, the two layers; steps

        if cleanup == "boot":
            await runtime.remove_build_leftovers(app)  # what the boot's cleanup runs
        else:
            await runtime.remove_app_images(app)  # what apps:destroy runs
        ids = {image.id for image in client.images.list(all=True)}
        left = [i for i in ids if i.removeprefix("sha256:").startswith(tuple(recorded))]
        assert left == [client.images.get(STAND_IN_IMAGE).id]
        assert set(others) <= ids
        assert not client.containers.list(all=True, filters={"id": containers[-1]})
        assert not (steps / app).exists()
    finally:
        await runtime.remove_app_images(app)
        for image in others:
            client.images.remove(image, force=True)
        client.close()
