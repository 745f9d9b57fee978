"""Apps isolated from each other, and instances replaced as soon as they die (and
reported with why, and what they last said), through a real agent, real Docker and real
pushes over SSH (two apps with their own Dockerfile)."""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest

from tests.e2e.conftest import APPS, DOMAIN
from tests.e2e.harness import Load

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

MINE, THEIRS = "e2e-iso-a", "e2e-iso-b"
# `hog` allocates past the 32 MiB its test gives it, after the roll-out has seen it settle.
PROCFILE = ("web: python3 server.py\nworker: sleep infinity\n"
            "hog: python3 -c 'import time; time.sleep(4); x = bytearray(256 << 20)'\n"
            # `crash` says a config value and why it fails, then exits 3 (past the roll-out).
            "crash: echo token $SECRET_TOKEN; echo crash.1 cannot open the database; "
            "sleep 4; exit 3\n")
FETCH = ("import sys, urllib.request\n"
         "try: print(urllib.request.urlopen('http://%s:5000/', timeout=3).read().decode())\n"
         "except Exception as exc: print('unreachable', type(exc).__name__); sys.exit(7)\n")


def docker_out(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def web_container(app: str) -> str:
    (found,) = docker_out("ps", "-q", "--filter", f"label=berth.app={app}",
                          "--filter", "label=berth.process=web").split()
    return found


@pytest.fixture(scope="module")
def pushed(developer) -> None:
    for app in (MINE, THEIRS):
        tree = developer.repo(APPS / "dockerfile", app)
        tree.write("Procfile", PROCFILE)
        tree.commit("with a worker")
        result = tree.push()
        assert f"is live: http://{app}.{DOMAIN}" in result.stdout + result.stderr


def fetch(agent, app: str, host: str) -> subprocess.CompletedProcess[str]:
    return agent.cli("run", app, "--", "python3", "-c", FETCH % host)


def test_an_app_reaches_its_process_types_by_name(agent, pushed) -> None:
    agent.ok("ps:scale", MINE, "worker=1")
    for name in ("web", "web.1"):
        result = fetch(agent, MINE, name)
        assert result.returncode == 0 and "hello from a Dockerfile" in result.stdout, result
    worker = docker_out("ps", "-q", "--filter", f"label=berth.app={MINE}",
                        "--filter", "label=berth.process=worker").split()[0]
    reached = subprocess.run(["docker", "exec", worker, "python3", "-c", FETCH % "web"],
                             capture_output=True, text=True, check=False)
    assert "hello from a Dockerfile" in reached.stdout, reached


def test_another_apps_containers_are_unreachable(agent, pushed) -> None:
    theirs = web_container(THEIRS)
    address = docker_out("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}"
                         "{{end}}", theirs).strip()
    assert address
    refused = fetch(agent, MINE, address)
    assert refused.returncode == 7 and "unreachable" in refused.stdout, refused
    assert fetch(agent, THEIRS, address).returncode == 0  # it is up, for its own app


def test_a_killed_instance_is_replaced_within_seconds(agent, pushed) -> None:
    host = f"{MINE}.{DOMAIN}"
    killed = web_container(MINE)
    docker_out("kill", killed)
    started = time.monotonic()
    while time.monotonic() - started < 15:
        try:
            status = agent.get(host, timeout=2)[0]
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(0.1)
    took = time.monotonic() - started
    assert status == 200 and took < 5, f"answered {status} after {took:.1f} s"
    assert web_container(MINE) != killed
    info = agent.ok("apps:info", MINE)
    assert "InstanceReplaced: web.1 was killed (SIGKILL, exit status 137); replaced" in info


def web_containers(app: str) -> list[str]:
    return docker_out("ps", "-q", "--filter", f"label=berth.app={app}",
                      "--filter", "label=berth.process=web").split()


def test_one_of_two_instances_killed_under_load_fails_no_request(agent, pushed) -> None:
    host = f"{MINE}.{DOMAIN}"
    agent.ok("ps:scale", MINE, "web=2")
    try:
        deadline = time.monotonic() + 60
        while len(webs := web_containers(MINE)) != 2:
            assert time.monotonic() < deadline, f"web=2 never ran: {webs}"
            time.sleep(0.2)
        with Load(agent.http_port, host, clients=4) as load:
            while load.ok < 100:
                assert time.monotonic() < deadline and not load.failures, load.failures[:3]
                time.sleep(0.05)
            victim = webs[0]
            docker_out("kill", victim)
            replaced_by = time.monotonic() + 15
            while victim in (now := web_containers(MINE)) or len(now) != 2:
                assert time.monotonic() < replaced_by, f"not replaced: {now}"
                time.sleep(0.1)
            served = load.ok
            while load.ok < served + 100:  # and the pair serves on
                assert time.monotonic() < replaced_by + 15, load.statuses
                time.sleep(0.05)
        assert load.failures == [], (load.failures[:5], load.statuses, agent.log_tail(30))
        assert set(load.statuses) == {200}
    finally:
        agent.ok("ps:scale", MINE, "web=1")


def test_ps_limit_applies_to_instances_and_one_offs(agent, pushed) -> None:
    out = agent.ok("ps:limit", THEIRS, "web", "memory=256m", "cpus=0.5")
    assert f"{THEIRS} web: memory=256m cpus=0.5 pids=1024" in out
    # The change restarted the instances; the old one is stopped in the background.
    deadline = time.monotonic() + 60
    while len(webs := docker_out("ps", "-q", "--filter", f"label=berth.app={THEIRS}",
                                 "--filter", "label=berth.process=web").split()) > 1:
        assert time.monotonic() < deadline, "the old web instance never stopped"
        time.sleep(0.5)
    (web,) = webs
    host = docker_out("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} "
                      "{{.HostConfig.PidsLimit}}", web).split()
    assert host == [str(256 << 20), "500000000", "1024"]
    info = agent.ok("apps:info", THEIRS)
    assert "web: memory=256m cpus=0.5 pids=1024" in info
    assert "run: memory=1g cpus=1 pids=1024" in info  # the defaults of berth.toml
    refused = agent.cli("ps:limit", THEIRS, "web", "memory=lots")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused
    assert "invalid limit" in refused.stderr
    agent.ok("ps:limit", THEIRS, "run", "memory=64m")
    limit = agent.cli("run", THEIRS, "--", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert limit.stdout.strip() == str(64 << 20), limit


def test_an_instance_past_its_memory_limit_is_reported_out_of_memory(agent, pushed) -> None:
    agent.ok("ps:limit", THEIRS, "hog", "memory=32m")
    agent.ok("ps:scale", THEIRS, "hog=1")
    try:
        deadline, info = time.monotonic() + 90, ""
        while time.monotonic() < deadline and "hog.1 " not in info:
            info = agent.ok("apps:info", THEIRS)
            time.sleep(0.5)  # the event comes within seconds of the kill
        assert ("InstanceRestarted: hog.1 ran out of memory (limit 32 MB); "
                "restarted by its restart policy") in info, info
    finally:
        agent.ok("ps:scale", THEIRS, "hog=0")


def test_a_crashed_instance_is_reported_with_its_status_and_last_lines(agent, pushed) -> None:
    secret = f"tok-{secrets.token_hex(8)}"
    agent.ok("config:set", THEIRS, f"SECRET_TOKEN={secret}")
    agent.ok("ps:scale", THEIRS, "crash=1")
    try:
        deadline, info = time.monotonic() + 90, ""
        while time.monotonic() < deadline and "crash.1 exited" not in info:
            info = agent.ok("apps:info", THEIRS)
            time.sleep(0.5)
        assert ("InstanceRestarted: crash.1 exited with status 3; restarted by its restart "
                "policy; its last lines:") in info, info
        assert "| crash.1 cannot open the database" in info
        assert "| token [SECRET_TOKEN]" in info and secret not in info
    finally:
        agent.ok("ps:scale", THEIRS, "crash=0")
        agent.ok("config:unset", THEIRS, "SECRET_TOKEN")


def test_destroy_removes_the_apps_network(agent, pushed) -> None:
    agent.ok("apps:destroy", MINE, "--confirm", MINE)
    names = docker_out("network", "ls", "--format", "{{.Name}}").split()
    assert f"berth-{MINE}" not in names and f"berth-{THEIRS}" in names
