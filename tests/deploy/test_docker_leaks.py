"""What killed builds leave in the engine is found by its label and removed."""

from __future__ import annotations

import io
import secrets

import pytest

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
