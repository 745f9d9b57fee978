"""(j) kill -9 of the agent in the middle of a deploy, then a restart: the previous
release serves again, the interrupted deploy is marked failed, its containers are gone,
and the live release's containers are adopted, not restarted.

Then restarts under load, the app deployed by the first test still serving: in place
(SIGHUP, the agent execs itself keeping its listening sockets: how an upgrade restarts it
without systemd, and `systemctl reload berth`) and as systemd restarts a socket-activated
service (the sockets held outside the agent, passed to each start). Not one request fails,
over keep-alive connections or new ones, and the app's containers are the same after."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import docker
import pytest

from tests.e2e.conftest import APPS, DOMAIN
from tests.e2e.harness import AgentProcess, Load, listening_sockets

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

APP = "e2e-restart"
HOST = f"{APP}.{DOMAIN}"

SLOW_CHECK = '{"healthchecks": {"web": [{"path": "/", "initialDelay": 60, "attempts": 1}]}}'


def containers(app: str) -> dict[str, str]:
    client = docker.from_env()
    try:
        return {c.id: c.labels["berth.release"]
                for c in client.containers.list(all=True, filters={"label": f"berth.app={app}"})}
    finally:
        client.close()


def test_kill_9_mid_deploy_then_restart(agent, developer):
    work = developer.repo(APPS / "flask", APP)
    work.push()
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    live_containers = containers(APP)
    assert set(live_containers.values()) == {"1"}

    work.write("app.py", (APPS / "flask" / "app.py").read_text().replace("hello", "v2"))
    work.write("app.json", SLOW_CHECK)
    work.commit("v2 with a slow health check")
    push = subprocess.Popen(["git", "-C", str(work.path), "push", "deploy", "HEAD:main"],
                            env=developer.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        releases = json.loads(agent.ok("releases", APP, "--json"))
        if releases[0]["state"] == "starting" and "2" in containers(APP).values():
            break
        time.sleep(0.5)
    else:
        pytest.fail("the deploy never reached its health check")

    agent.kill()
    output, _ = push.communicate(timeout=120)
    assert push.returncode != 0, output
    assert "2" in containers(APP).values()  # the half-done deploy's container is left behind

    agent.start()
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    releases = {r["version"]: r for r in json.loads(agent.ok("releases", APP, "--json"))}
    assert releases[2]["state"] == "failed" and "interrupted" in releases[2]["error"]
    assert releases[1]["state"] == "live"
    assert containers(APP) == live_containers  # adopted: same containers, none of v2


def test_restart_restores_missing_instances(agent):
    client = docker.from_env()
    try:
        (victim,) = client.containers.list(filters={"label": f"berth.app={APP}"})
        victim.remove(force=True)
    finally:
        client.close()
    agent.stop()
    agent.start()
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    assert len(containers(APP)) == 1


def restarted_under_load(agent: AgentProcess, restart: Callable[[], None]) -> None:
    """Run `restart` while keep-alive clients and new-connection clients send requests;
    assert none failed, and that requests were answered after the restart too."""
    before = containers(APP)
    with Load(agent.http_port, HOST, clients=3) as kept, \
            Load(agent.http_port, HOST, clients=2, keep_alive=False) as fresh:
        wait_for(lambda: kept.ok > 20 and fresh.ok > 20)
        restart()
        answered = kept.ok + fresh.ok
        wait_for(lambda: kept.ok + fresh.ok > answered + 40)
    failures = kept.failures + fresh.failures
    assert failures == [], (failures[:5], kept.statuses, fresh.statuses, agent.log_tail(30))
    assert set(kept.statuses) == set(fresh.statuses) == {200}
    assert containers(APP) == before  # the app ran on throughout


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_restart_in_place_fails_no_request(agent):
    assert agent.get(HOST)[0] == 200
    assert agent.process is not None
    pid = agent.process.pid
    restarted_under_load(agent, agent.restart_in_place)
    assert agent.process.pid == pid and agent.process.poll() is None
    assert "listening socket taken over name=http" in agent.log_tail(400)


def test_socket_activated_restart_fails_no_request(agent):
    agent.stop()
    sockets = listening_sockets(agent.http_port, agent.https_port)
    try:
        agent.start(sockets=sockets)

        def restart() -> None:  # systemctl restart: stop, then start with the same sockets
            agent.stop()
            agent.start(sockets=sockets)

        restarted_under_load(agent, restart)
        agent.stop()
    finally:
        for sock in sockets:
            sock.close()
    agent.start()  # binding its own sockets again, for the tests after this one
