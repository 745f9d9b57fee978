"""Limits on a real engine: every kind of container gets its own, and a process past its
memory is killed by the kernel."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from agent.deploy.docker_runtime import DockerRuntime
from agent.deploy.events import EngineEvents
from agent.deploy.oomwatch import OomWatch
from agent.deploy.plan import Instance, instance_spec, one_off_spec
from agent.limits import Limits
from agent.releases import Release, ReleaseState
from tests.conftest import STAND_IN_IMAGE
from tests.engine_cleanup import remove_installation

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
LIMITS = {"web": Limits(32 * MIB, 0.5, 64), "run": Limits(24 * MIB, 0.25, 32)}
DEFAULTS = Limits(64 * MIB, 1.0, 128)
EAT = "python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'"

def release(app: str, command: str) -> Release:
    return Release(app=app, number=1, state=ReleaseState.LIVE, description="t", created_at=0.0,
                   image=STAND_IN_IMAGE, processes={"web": command, "worker": "sleep 600"})

async def test_each_container_runs_under_its_limits_and_oom_is_reported() -> None:
    import docker

    client = docker.from_env()
    app, installation = f"limtest-{secrets.token_hex(3)}", f"test-{secrets.token_hex(3)}"
    watch = OomWatch()
    assert watch.start(), "the kernel log must be readable (the agent runs as root)"
    runtime = DockerRuntime(client, installation,
                            lambda _app, process: LIMITS.get(process, Limits()).over(DEFAULTS),
                            oom=watch)
    deaths = EngineEvents(client, installation).deaths()
    try:
        first_death = asyncio.ensure_future(anext(deaths))
        await asyncio.sleep(0.5)
        specs = [instance_spec(release(app, EAT), Instance(process, 1), restart_policy="no",
                               host_port=None, container_port=5000, log_max_size="1m",
                               log_max_files=1, generation="g")
                 for process in ("worker", "web")]
        seen = {}
        for spec in specs:
            container = await runtime.start(spec)
            host = client.api.inspect_container(container.id)["HostConfig"]
            seen[spec.labels["berth.process"]] = (host["Memory"], host["MemorySwap"],
                                                  host["NanoCpus"], host["PidsLimit"])
        assert seen == {"worker": (64 * MIB, 64 * MIB, 1_000_000_000, 128),
                        "web": (32 * MIB, 32 * MIB, 500_000_000, 64)}
        death = await asyncio.wait_for(first_death, 30)  # web ate past its 32 MiB
        # Killed by the kernel at 32 MiB. (Whether the engine also reports it as an OOM
        # depends on the host kernel's cgroup notifications: see test_events.py.)
        assert (death.dyno, death.exit_code) == ("web.1", 137)
        lines: list[str] = []
        one_off = one_off_spec(release(app, EAT), EAT, 1, "t", container_port=5000)
        assert await runtime.run_once(one_off, 60, lines.append) == 137
        assert str(200 * MIB) not in lines  # killed before it could print
        # The release phase and `berth run` say why, under the exit status.
        assert lines[-1] == "ran out of memory (limit 24 MB): killed by the kernel", lines
    finally:
        await asyncio.to_thread(watch.close)
        await deaths.aclose()
        left = remove_installation(client.api, installation)
        client.close()
    assert not left, f"networks still in use after the test: {left}"
