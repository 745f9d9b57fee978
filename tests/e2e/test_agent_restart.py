"""(j) kill -9 of the agent in the middle of a deploy, then a restart: the previous
release serves again, the interrupted deploy is marked failed, its containers are gone,
and the live release's containers are adopted, not restarted."""

from __future__ import annotations

import json
import subprocess
import time

import docker
import pytest

from tests.e2e.conftest import APPS, DOMAIN

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
