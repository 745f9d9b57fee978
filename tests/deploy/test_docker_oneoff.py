"""One-off containers on a real engine: every byte of their output, at the reader's
pace, and their exit status."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Iterator

import pytest

from agent.deploy.docker_oneoff import OutputLost
from agent.deploy.docker_runtime import DockerRuntime
from agent.deploy.plan import one_off_spec
from agent.releases import Release, ReleaseState
from tests.conftest import STAND_IN_IMAGE
from tests.engine_cleanup import remove_installation

pytestmark = pytest.mark.docker


@pytest.fixture
def runtime() -> Iterator[DockerRuntime]:
    import docker

    client = docker.from_env()
    installation = f"test-{secrets.token_hex(4)}"
    yield DockerRuntime(client, installation)
    try:
        assert not remove_installation(client.api, installation)
    finally:
        client.close()


APP = f"oneofftest-{secrets.token_hex(3)}"  # its network is this run's alone


def spec(command: str):
    release = Release(app=APP, number=1, state=ReleaseState.LIVE, description="t",
                      created_at=0.0, image=STAND_IN_IMAGE)
    return one_off_spec(release, command, 1, secrets.token_hex(3), container_port=5000)


class Collector:
    def __init__(self, delay: float = 0.0) -> None:
        self.digests = {1: hashlib.sha256(), 2: hashlib.sha256()}
        self.sizes = {1: 0, 2: 0}
        self.delay = delay

    async def __call__(self, stream: int, data: bytes) -> None:
        self.digests[stream].update(data)
        self.sizes[stream] += len(data)
        if self.delay:
            await asyncio.sleep(self.delay)


async def test_ten_million_lines_arrive_byte_exact_with_the_exit_status(runtime) -> None:
    out = Collector()
    status = await runtime.run_streamed(
        spec("seq 1 10000000; echo to stderr >&2; exit 3"), 600, out)
    expected = "".join(f"{n}\n" for n in range(1, 10_000_001)).encode()
    assert status == 3
    assert (out.sizes[1], out.digests[1].hexdigest()) == (
        len(expected), hashlib.sha256(expected).hexdigest())
    assert out.digests[2].hexdigest() == hashlib.sha256(b"to stderr\n").hexdigest()


async def test_a_one_offs_output_is_not_kept_in_engine_logs(runtime) -> None:
    seen: list[str] = []

    async def sink(stream: int, data: bytes) -> None:
        if not seen:
            # all=True: `echo` may have exited by the time its output is handed over.
            found = runtime._api.containers(all=True, filters={
                "label": "berth.role=run", "name": one_off.name})
            seen.append(runtime._api.inspect_container(found[0]["Id"])
                        ["HostConfig"]["LogConfig"]["Type"])

    one_off = spec("echo hello")
    assert await runtime.run_streamed(one_off, 60, sink) == 0
    assert seen == ["none"]


async def test_a_slow_reader_loses_nothing(runtime) -> None:
    out = Collector(delay=0.01)
    status = await runtime.run_streamed(spec("head -c 20000000 /dev/zero"), 600, out)
    assert status == 0
    assert out.digests[1].hexdigest() == hashlib.sha256(bytes(20_000_000)).hexdigest()


async def test_lines_for_the_release_phase_and_a_deadline(runtime) -> None:
    lines: list[str] = []
    assert await runtime.run_once(spec("printf 'a\\nb\\nlast'"), 60, lines.append) == 0
    assert lines == ["a", "b", "last"]
    lines.clear()
    assert await runtime.run_once(spec("echo started; sleep 60"), 3, lines.append) == -1
    assert lines == ["started", "timed out after 3 s; stopping"]


async def test_a_failing_sink_stops_the_run_and_is_reported(runtime, caplog) -> None:
    pieces: list[bytes] = []

    async def broken(stream: int, data: bytes) -> None:
        pieces.append(data)
        raise ConnectionResetError("sink broke")

    one_off = spec("seq 1 1000000; exit 0")
    with (caplog.at_level("WARNING", logger="agent.deploy.docker_oneoff"),
          pytest.raises(OutputLost, match="sink broke")):
        await runtime.run_streamed(one_off, 120, broken)
    assert len(pieces) == 1  # nothing more was handed to a sink that failed
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "sink broke" in warned[0]
    assert re.search(r"container=[0-9a-f]{12} ", warned[0])
    assert runtime._api.containers(all=True, filters={"name": one_off.name}) == []
