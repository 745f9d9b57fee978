"""Apps are isolated from each other on the engine: real containers of two apps.

Within an app, a container reaches the app's process types by name (`web`) and its
instances by dyno (`web.1`); another app's containers are unreachable, even by address.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from agent.deploy.docker_runtime import DockerRuntime
from agent.deploy.networks import app_network, remove_app_network
from agent.deploy.plan import Instance, instance_spec, one_off_spec
from agent.releases import Release, ReleaseState
from tests.conftest import STAND_IN_IMAGE
from tests.engine_cleanup import remove_installation

pytestmark = pytest.mark.docker

SERVE = "python3 -m http.server 5000"
FETCH = """python3 -c '
import sys, urllib.request
try:
    print(urllib.request.urlopen("http://%s:5000/", timeout=3).status)
except Exception as exc:
    print("unreachable", type(exc).__name__); sys.exit(7)
'"""


@pytest.fixture
def runtime() -> Iterator[DockerRuntime]:
    import docker

    client = docker.from_env()
    installation = f"test-{secrets.token_hex(4)}"
    runtime = DockerRuntime(client, installation)
    yield runtime
    try:
        assert not remove_installation(client.api, installation)
    finally:
        client.close()


def release(app: str) -> Release:
    return Release(app=app, number=1, state=ReleaseState.LIVE, description="test",
                   created_at=0.0, image=STAND_IN_IMAGE, processes={"web": SERVE})


async def start_web(runtime: DockerRuntime, app: str) -> str:
    spec = instance_spec(release(app), Instance("web", 1), restart_policy="no", host_port=None,
                         container_port=5000, log_max_size="1m", log_max_files=1,
                         generation=secrets.token_hex(2))
    container = await runtime.start(spec)
    attrs = await asyncio.to_thread(runtime._api.inspect_container, container.id)
    return str(attrs["NetworkSettings"]["Networks"][app_network(app)]["IPAddress"])


async def fetch(runtime: DockerRuntime, app: str, host: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    spec = one_off_spec(release(app), FETCH % host, 1, secrets.token_hex(3), container_port=5000)
    status = await runtime.run_once(spec, 60, lines.append)
    return status, lines


async def test_an_app_reaches_its_own_processes_by_name_and_no_other_app(runtime) -> None:
    apps = [f"isotest-{secrets.token_hex(3)}" for _ in range(2)]
    try:
        mine, theirs = apps
        await start_web(runtime, mine)
        their_address = await start_web(runtime, theirs)
        await asyncio.sleep(1.5)  # http.server listening
        for name in ("web", "web.1"):
            status, lines = await fetch(runtime, mine, name)
            assert (status, lines[-1:]) == (0, ["200"]), lines
        # Their web answers on its own network (so it is up) ...
        assert await fetch(runtime, theirs, their_address) == (0, ["200"])
        # ... but not to my app, by address or by name.
        status, lines = await fetch(runtime, mine, their_address)
        assert status == 7 and lines[-1].startswith("unreachable"), lines
    finally:
        for container in await runtime.containers():
            await runtime.remove(container.id, 0)
        for app in apps:
            await asyncio.to_thread(remove_app_network, runtime._api, app)
