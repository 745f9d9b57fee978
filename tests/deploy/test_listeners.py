"""What an instance listens on (agent.deploy.listeners, agent.deploy.binding): the
kernel's socket tables read for real, and a deploy whose instance listens where the
proxy cannot reach it failing in seconds with a line that says so."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.deploy import listeners
from agent.deploy.binding import BindingWatch
from agent.deploy.errors import DeployFailed
from agent.deploy.listeners import Listener, misbound
from agent.deploy.runtime import Container
from tests.deploy.fakes import lines, world_in


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_sockets_this_process_listens_on_are_read_from_proc() -> None:
    with socket.socket() as local, socket.socket(socket.AF_INET6) as anywhere:
        local.bind(("127.0.0.1", 0))
        local.listen()
        anywhere.bind(("::", 0))
        anywhere.listen()
        found = listeners.read(os.getpid())
        assert found is not None
        assert Listener("127.0.0.1", local.getsockname()[1]) in found
        assert Listener("::", anywhere.getsockname()[1]) in found
        assert str(Listener("::", 80)) == "[::]:80"


@pytest.mark.parametrize(("listening", "problem"), [
    ([], None),  # still starting
    ([Listener("0.0.0.0", 5000)], None),
    ([Listener("::", 5000), Listener("127.0.0.1", 9000)], None),
    ([Listener("127.0.0.1", 5000)], "listens on 127.0.0.1:5000 only, which the proxy cannot "
                                    "reach: bind 0.0.0.0:$PORT (5000)"),
    ([Listener("::1", 5000)], "listens on [::1]:5000 only, which the proxy cannot reach: "
                              "bind 0.0.0.0:$PORT (5000)"),
    ([Listener("0.0.0.0", 8000), Listener("127.0.0.1", 8001)],
     "listens on 0.0.0.0:8000, 127.0.0.1:8001, not on $PORT (5000)"),
    # Docker's resolver inside a container on a user-defined network: not the app's
    ([Listener("127.0.0.11", 46841)], None),
    ([Listener("127.0.0.11", 46841), Listener("0.0.0.0", 8000)],
     "listens on 0.0.0.0:8000, not on $PORT (5000)"),
])
def test_a_binding_the_proxy_cannot_reach_is_named(listening, problem) -> None:
    assert misbound(listening, 5000) == problem


async def test_an_instance_on_loopback_only_fails_the_deploy_in_seconds(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", (
        "import socket, time\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)\n")])
    with world_in(tmp_path, container_port=port, health_timeout=60) as world:
        world.runtime.process = server.pid
        world.apps.create("shop")
        try:
            time.sleep(0.3)  # the process has bound its socket
            began = time.monotonic()
            with pytest.raises(DeployFailed) as failed:
                await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
            assert time.monotonic() - began < 15  # not the 60 s deadline
            assert failed.value.reason == (
                "health check of http://shop.example.test/ failed: "
                f"web.1: listens on 127.0.0.1:{port} only, which the proxy cannot reach: "
                f"bind 0.0.0.0:$PORT ({port})")
            log = world.releases.log("shop", 1)
            assert "command: gunicorn app" in log
            [listening] = [line for line in log.splitlines() if "listening on: " in line]
            assert f"expected to listen on 0.0.0.0:{port} ($PORT)" in listening
            # the whole host's sockets here: a container has its own network namespace
            assert f"127.0.0.1:{port}" in listening.split("listening on: ")[1].split(", ")
        finally:
            server.kill()
            server.wait()
            await world.runtime.close()


class _Exited:
    """An engine whose instance has already exited with code 1."""

    def __init__(self, started: Container) -> None:
        self._now = dataclasses.replace(started, state="exited", exit_code=1, pid=None)

    async def get(self, container_id: str) -> Container | None:
        return self._now


async def test_an_instance_that_exited_first_still_names_its_command() -> None:
    started = Container(id="c1", name="shop.web.1", state="running", pid=42)
    watch = BindingWatch(_Exited(started), started, 5000)
    assert await watch.problem() == "exited with code 1"
    assert watch.explain("python main.py") == "\ncommand: python main.py"
    assert watch.explain("") == "\ncommand: the image CMD"
