"""Instances that die on a real engine: past their memory limit (which the engine itself
reports no OOM for here), the app's events say who ran out of memory, with the limit; an
instance that exits on its own is reported with its exit status and its last log lines,
config var values hidden."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from agent.deploy.docker_runtime import DockerRuntime
from agent.deploy.events import EngineEvents
from agent.deploy.oomwatch import OomWatch
from agent.deploy.plan import Instance, instance_spec
from agent.deploy.reconciler import Reconciler
from agent.limits import Limits
from agent.store.events import Event, EventStore
from tests.conftest import STAND_IN_IMAGE
from tests.deploy.fakes import World, lines
from tests.engine_cleanup import remove_installation

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
EAT = "python3 -c 'import time; time.sleep(0.5); x = bytearray(200 * 1024 * 1024)'"


@asynccontextmanager
async def running(world: World, command: str,
                  config: dict[str, str] | None = None) -> AsyncIterator[str]:
    """An app whose web.1 runs `command` on the real engine under `ps:limit web
    memory=32m`, its deaths and the kernel's OOM kills followed as the agent does; the
    app's name."""
    import docker

    client = docker.from_env()
    app, installation = f"oomtest-{secrets.token_hex(3)}", f"test-{secrets.token_hex(3)}"
    world.apps.create(app)
    world.apps.replace_config(app, config or {})
    await world.deployer.deploy_push(app, "a" * 40, world.source, lines()[0])
    await world.deployer.settled(10)
    live = world.releases.live(app)
    assert live is not None
    engine = DockerRuntime(client, installation, lambda _app, process: Limits(32 * MIB))
    reconciler = Reconciler(world.apps, world.releases, engine, world.rollout, world.deployer,
                            EventStore(world.db), oom=(watch := OomWatch()))
    assert watch.start(on_kill=reconciler.noticed_oom), "the kernel log must be readable"
    following = asyncio.create_task(
        reconciler.follow(EngineEvents(client, installation).deaths()))
    try:
        await asyncio.sleep(0)  # the engine's events are followed from now on
        await engine.start(instance_spec(
            replace(live, image=STAND_IN_IMAGE, processes={"web": command}), Instance("web", 1),
            restart_policy="unless-stopped", host_port=None, container_port=5000,
            log_max_size="1m", log_max_files=1, generation="g"))
        yield app
    finally:
        following.cancel()
        await asyncio.gather(following, *reconciler._watching, return_exceptions=True)
        await asyncio.to_thread(watch.close)
        left = remove_installation(client.api, installation)
        client.close()
        await world.runtime.close()
    assert not left, f"networks still in use after the test: {left}"


async def first_report(world: World, app: str, within: float) -> Event:
    """The app's first event about an instance or a process, waited for up to `within` s."""
    store, deadline = EventStore(world.db), time.monotonic() + within
    while time.monotonic() < deadline:
        found = [e for e in store.list(app) if e.kind.startswith(("Instance", "Process"))]
        if found:
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing reported for {app} within {within} s")


async def test_an_instance_past_its_memory_limit_is_reported_out_of_memory(world) -> None:
    async with running(world, EAT) as app:
        event = await first_report(world, app, within=60)
    assert event.kind == "InstanceRestarted"  # its last lines follow (the shell's "Killed")
    assert event.message.partition("; its last lines:")[0] == (
        "web.1 ran out of memory (limit 32 MB); restarted by its restart policy")


async def test_a_process_killed_in_an_instance_that_lives_on_is_reported(world) -> None:
    async with running(world, f"sh -c \"{EAT}; exec sleep 600\"") as app:
        event = await first_report(world, app, within=60)
    assert (event.kind, event.message) == ("ProcessKilled", (
        "web.1: python3 ran out of memory (limit 32 MB) and was killed; web.1 runs on"))


async def test_a_crashed_instance_is_reported_with_its_exit_status_and_last_lines(world) -> None:
    url = "postgres://app:pw-" + secrets.token_hex(8) + "@db:5432/shop"
    crash = "echo connecting to $DATABASE_URL; echo web.1 cannot start: no such table; exit 3"
    async with running(world, crash, {"DATABASE_URL": url}) as app:
        event = await first_report(world, app, within=60)
    assert event.kind == "InstanceRestarted"
    head, _, lines = event.message.partition("; its last lines:\n")
    assert head == "web.1 exited with status 3; restarted by its restart policy"
    assert "  | web.1 cannot start: no such table" in lines.splitlines()
    assert "  | connecting to [DATABASE_URL]" in lines.splitlines()
    assert url.split("@")[0].split(":")[-1] not in event.message
