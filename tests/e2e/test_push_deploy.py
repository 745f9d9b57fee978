"""git push deploy main, for real: OpenSSH, git, the agent, Docker, the proxy.

The tests of this module share one agent and run in order: later ones build on apps
the earlier ones deployed (as a user's history would).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import APPS, DOMAIN
from tests.e2e.harness import Load, WorkTree

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

FLASK = "e2e-flask"
HOST = f"{FLASK}.{DOMAIN}"


@pytest.fixture(scope="module")
def flask(developer) -> WorkTree:
    return developer.repo(APPS / "flask", FLASK)


def pushed(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def remote_head(agent, app: str, branch: str = "main") -> str:
    result = subprocess.run(["git", "--git-dir", str(agent.root / "data" / "repos" / f"{app}.git"),
                             "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip()


def wait_for(predicate, timeout: float = 30, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# (a) a Flask app with requirements.txt and a Procfile with web and worker ----------------


def test_flask_app_with_web_and_worker(agent, flask):
    output = pushed(flask.push())
    assert "-----> Building e2e-flask v1" in output
    assert "Python app detected" in output
    assert f"is live: http://{HOST}" in output
    assert "worker is scaled to 0" in output
    status, body = agent.get(HOST)
    # PORT is 5000 inside; the repo's .env (GREETING=from-dotenv) is not config.
    assert (status, body) == (200, b"hello from flask on port 5000\n")
    assert remote_head(agent, FLASK) == flask.head()

    scaled = agent.ok("ps:scale", FLASK, "worker=1", "web=2")
    assert "Scaled to web=2 worker=1" in scaled
    ps = json.loads(agent.ok("ps", FLASK, "--json"))
    running = sorted(i["dyno"] for i in ps["instances"] if i["state"] == "running")
    assert running == ["web.1", "web.2", "worker.1"]
    logs = wait_for(lambda: "worker heartbeat" in agent.ok("logs", FLASK, "--process", "worker",
                                                               "-n", "5"))
    assert logs, "the worker's output never reached `berth logs`"
    env = agent.ok("logs", FLASK, "-n", "5")
    assert f"{FLASK}[worker.1 v1]: worker heartbeat" in env


def test_web_instances_are_published_on_loopback_only(agent):
    import docker

    client = docker.from_env()
    try:
        containers = client.containers.list(filters={"label": f"berth.app={FLASK}"})
        assert containers
        for container in containers:
            bindings = container.attrs["HostConfig"]["PortBindings"] or {}
            process = container.labels["berth.process"]
            env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
            assert env["PORT"] == "5000" and env["DYNO"].startswith(process + ".")
            assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
            assert container.attrs["HostConfig"]["LogConfig"]["Config"]["max-file"] == "3"
            if process == "web":
                (binding,) = bindings["5000/tcp"]
                assert binding["HostIp"] == "127.0.0.1"
            else:
                assert not bindings
    finally:
        client.close()


# (b) (c) (d) the other builders ---------------------------------------------------------


OTHERS = [
    ("express", "e2e-express", b"hello from express on port 5000\n"),
    ("static", "e2e-static", b"hello from a static site"),
    ("dockerfile", "e2e-docker", b"hello from a Dockerfile\n"),
]


def test_other_kinds_of_apps_deploy_side_by_side(agent, developer):
    """Express, a static site and an own Dockerfile, pushed at the same time."""
    trees = [developer.repo(APPS / sample, app) for sample, app, _ in OTHERS]
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    threads = [threading.Thread(target=lambda t=tree: results.__setitem__(t.path.name, t.push()))
               for tree in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    for _, app, expected in OTHERS:
        assert f"is live: http://{app}.{DOMAIN}" in pushed(results[app]), pushed(results[app])
        status, body = agent.get(f"{app}.{DOMAIN}")
        assert status == 200 and expected in body, body


# (e) a broken build, (f) a failing health check: rejected, previous still serving -------


def test_broken_build_rejects_the_push_and_keeps_serving(agent, flask):
    before = flask.head()
    flask.write("requirements.txt", "flask==3.1.3\ngunicorn==23.0.0\nno-such-package-berth==9.9\n")
    flask.commit("break the build")
    result = flask.push(check=False)
    output = pushed(result)
    assert result.returncode != 0
    assert "pre-receive hook declined" in output
    assert "v2 failed" in output and "no-such-package-berth" in output
    assert "The previous release keeps serving" in output
    assert remote_head(agent, FLASK) == before  # the branch did not move
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    flask.git("reset", "-q", "--hard", before)


def test_failing_health_check_rejects_the_push_with_the_reason(agent, flask):
    before = flask.head()
    flask.write("app.py", "from flask import Flask\napp = Flask(__name__)\n\n"
                "@app.get('/')\ndef index():\n    print('database unreachable', flush=True)\n"
                "    return 'broken', 500\n")
    flask.commit("break the app")
    # The app's own deadline (the default is 60 s): the push fails when it runs out.
    agent.ok("apps:set", FLASK, "health-timeout=15")
    try:
        result = flask.push(check=False)
    finally:
        agent.ok("apps:set", FLASK, "health-timeout=")
    output = pushed(result)
    assert result.returncode != 0
    assert "deadline 15 s" in output
    assert "health check" in output and "status 500" in output
    assert "database unreachable" in output  # the container's last log lines
    assert remote_head(agent, FLASK) == before
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    releases = json.loads(agent.ok("releases", FLASK, "--json"))
    assert [r["state"] for r in releases[:2]] == ["failed", "failed"]
    flask.git("reset", "-q", "--hard", before)


@pytest.mark.parametrize(("web", "problem", "listening"), [
    ("python -m http.server --bind 127.0.0.1 $PORT",
     r"listens on 127\.0\.0\.1:5000 only, which the proxy cannot reach: "
     r"bind 0\.0\.0\.0:\$PORT \(5000\)", "127.0.0.1:5000"),
    ("python -m http.server --bind 0.0.0.0 8080",
     r"listens on 0\.0\.0\.0:8080, not on \$PORT \(5000\)", "0.0.0.0:8080"),
], ids=["loopback-only", "another-port"])
def test_an_app_listening_where_the_proxy_cannot_reach_is_refused_in_seconds(
        agent, flask, web, problem, listening):
    before = flask.head()
    others = [line for line in (APPS / "flask" / "Procfile").read_text().splitlines()
              if not line.startswith("web:")]
    flask.write("Procfile", "\n".join([f"web: {web}", *others]) + "\n")
    flask.commit("listen where the proxy cannot reach")
    began = time.monotonic()
    try:
        result = flask.push(check=False)
        took = time.monotonic() - began
        output = pushed(result)
        assert result.returncode != 0
        # With web=2 either instance may be the first one found listening wrong.
        assert re.search(rf"web\.\d: {problem}", output), output
        assert f"command: {web}" in output
        assert (f"expected to listen on 0.0.0.0:5000 ($PORT); listening on: {listening}"
                in output)
        assert took < 50  # the health deadline is 60 s: the push did not wait for it
        assert remote_head(agent, FLASK) == before
        assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    finally:  # the later tests push on from the good commit, whatever happened here
        flask.git("reset", "-q", "--hard", before)


# (g) config:set with zero failed requests ------------------------------------------------


def test_config_set_restarts_with_zero_failed_requests(agent):
    with Load(agent.http_port, HOST, clients=4) as load:
        time.sleep(0.5)
        agent.ok("config:set", FLASK, "GREETING=bonjour à tous")
        time.sleep(0.5)
    assert load.failures == [] and load.ok > 50, (load.failures[:5], load.statuses)
    assert agent.get(HOST) == (200, "bonjour à tous from flask on port 5000\n".encode())
    assert agent.ok("config:get", FLASK, "GREETING") == "bonjour à tous\n"
    traffic = json.loads(agent.ok("apps:info", FLASK, "--json"))["traffic"]
    assert traffic["status_2xx"] >= load.ok and traffic["status_5xx"] == 0
    assert "Traffic:" in agent.ok("apps:info", FLASK)
    time.sleep(1.5)  # the access log is flushed once a second
    access = (agent.root / "log" / "access.log").read_text()
    assert f"host={HOST} method=GET path=/ status=200" in access


def test_config_values_survive_exactly(agent):
    value = "spaces  and 'single' \"double\" $dollar\nsecond line ünïcödé 🚀"
    agent.ok("config:set", FLASK, f"ODD={value}", "--no-restart")
    config = json.loads(agent.ok("config", FLASK, "--json"))
    assert config["ODD"] == value
    assert agent.cli("config:set", FLASK, "MISSING_EQUALS").returncode != 0
    bad = agent.cli("config:set", FLASK, "BAD KEY=1")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "invalid config key" in bad.stderr
    agent.ok("config:unset", FLASK, "ODD", "--no-restart")


# (h) rollback -----------------------------------------------------------------------------


def test_rollback_restores_image_and_config(agent):
    releases = json.loads(agent.ok("releases", FLASK, "--json"))
    first = min(r["version"] for r in releases if r["state"] in ("live", "superseded"))
    with Load(agent.http_port, HOST, clients=2) as load:
        agent.ok("rollback", FLASK, f"v{first}")
    assert load.failures == [], load.failures[:5]
    assert agent.get(HOST) == (200, b"hello from flask on port 5000\n")
    assert "GREETING" not in json.loads(agent.ok("config", FLASK, "--json"))
    latest = json.loads(agent.ok("releases", FLASK, "--json"))[0]
    assert latest["state"] == "live" and latest["description"] == f"Rollback to v{first}"


# (i) a code-only push reuses the dependency layer -----------------------------------------


def test_code_only_push_reuses_the_dependency_layer(agent, flask):
    flask.write("app.py", (APPS / "flask" / "app.py").read_text().replace("hello", "howdy"))
    flask.commit("code only")
    output = pushed(flask.push())
    install = [line for line in output.splitlines() if "pip install -r requirements.txt" in line]
    assert install and all("(cached)" in line for line in install), install
    assert agent.get(HOST) == (200, b"howdy from flask on port 5000\n")


def docker_out(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


# Every entry under /app with its owner, mode, type and link target; __pycache__ left out
# (the running app writes it).
LIST_APP = ("cd /app && find . -path '*/__pycache__' -prune -o "
            "-printf '%p %u:%g %m %y %l %s\\n' | sort")


def running_web() -> list[str]:
    """The flask app's web containers, once those being retired are gone."""
    def listed() -> list[str]:
        return docker_out("ps", "-aq", "--filter", f"label=berth.app={FLASK}",
                          "--filter", "label=berth.process=web").split()
    wait_for(lambda: len(listed()) == 2)
    return listed()


def test_a_code_only_push_starts_early_with_exactly_the_release_images_files(agent, flask):
    """The instances of a code-only push start from the image before the code's COPY
    plus the pushed tree while the engine commits the release image; they must hold
    the same files (owners, modes, links, .dockerignore) as that image, and a restart
    (from the image) serves the same."""
    flask.write("app.py", (APPS / "flask" / "app.py").read_text().replace("hello", "early"))
    (flask.path / "static" / "css").mkdir(parents=True, exist_ok=True)
    flask.write("static/css/site.css", "body { margin: 0 }\n")
    flask.write("run.sh", "#!/bin/sh\nexec gunicorn app:app\n")
    (flask.path / "run.sh").chmod(0o750)
    (flask.path / "latest").unlink(missing_ok=True)
    (flask.path / "latest").symlink_to("static/css")
    flask.write(".dockerignore", "secret.txt\n")
    flask.write("secret.txt", "not for the image\n")
    flask.commit("code only, with odd files")
    with Load(agent.http_port, HOST, clients=4) as load:
        time.sleep(0.3)
        flask.push()
        time.sleep(0.3)
    assert load.failures == [] and load.ok > 20, (load.failures[:5], load.statuses)
    assert agent.get(HOST) == (200, b"early from flask on port 5000\n")

    web = running_web()
    assert len(web) == 2
    release = docker_out("inspect", "-f", '{{index .Config.Labels "berth.release"}}', web[0]).strip()
    tag = f"berth/{FLASK}:v{release}"
    image = docker_out("image", "inspect", "-f", "{{.Id}}", tag).strip()
    parent = docker_out("image", "inspect", "-f", "{{.Parent}}", tag).strip()
    started_from = {docker_out("inspect", "-f", "{{.Image}}", c).strip() for c in web}
    assert started_from == {parent}, "the instances did not start early, from the base"

    in_image = docker_out("run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", LIST_APP)
    for container in web:
        assert docker_out("exec", container, "/bin/sh", "-c", LIST_APP) == in_image
    # (git keeps only the executable bit: 750 arrives as 755)
    assert "./run.sh berth:berth 755 f" in in_image
    assert "./latest berth:berth 777 l static/css" in in_image
    assert "secret.txt" not in in_image

    agent.ok("ps:restart", FLASK)
    web = running_web()
    assert {docker_out("inspect", "-f", "{{.Image}}", c).strip() for c in web} == {image}
    assert agent.get(HOST) == (200, b"early from flask on port 5000\n")


def test_ps_rebuild_builds_the_live_commit_again(agent, flask):
    output = agent.ok("ps:rebuild", FLASK)
    assert f"from {flask.head()[:7]}" in output and "pip install -r requirements.txt (cached)" in output
    latest = json.loads(agent.ok("releases", FLASK, "--json"))[0]
    assert latest["state"] == "live" and latest["description"] == f"Rebuild {flask.head()[:7]}"
    assert agent.get(HOST) == (200, b"early from flask on port 5000\n")
    agent.ok("apps:create", "e2e-unpushed")
    never = agent.cli("ps:rebuild", "e2e-unpushed")
    assert never.returncode == 1 and never.stderr.count("\n") == 1
    assert "no live release yet" in never.stderr
    agent.ok("apps:destroy", "e2e-unpushed", "--confirm", "e2e-unpushed")


# the release phase -----------------------------------------------------------------------


def test_release_phase_runs_before_traffic_moves_and_can_abort(agent, flask):
    procfile = (APPS / "flask" / "Procfile").read_text()
    flask.write("Procfile", procfile + 'release: echo "release phase as $DYNO, greeting=$GREETING"'
                ' && test -z "$FAIL_RELEASE"\n')
    flask.commit("add a release phase")
    output = pushed(flask.push())
    assert "Running release command" in output
    assert "release phase as release.1, greeting=" in output
    live = json.loads(agent.ok("apps:info", FLASK, "--json"))["release"]

    failed = agent.cli("config:set", FLASK, "FAIL_RELEASE=1")
    assert failed.returncode == 1
    assert "release command exited with code 1" in failed.stdout + failed.stderr
    assert json.loads(agent.ok("apps:info", FLASK, "--json"))["release"] == live
    assert agent.get(HOST)[0] == 200
    assert "FAIL_RELEASE" not in json.loads(agent.ok("config", FLASK, "--json"))


# branches, waiting, and the verbs over SSH --------------------------------------------------


def test_other_branches_are_stored_without_deploying(agent, flask):
    live = json.loads(agent.ok("apps:info", FLASK, "--json"))["release"]
    output = pushed(flask.push("feature"))
    assert "feature stored; only pushes to main or master deploy" in output
    assert json.loads(agent.ok("apps:info", FLASK, "--json"))["release"] == live
    assert remote_head(agent, FLASK, "feature") == flask.head()


def test_a_second_operation_waits_for_the_first(agent):
    outputs: list[str] = []

    def restart() -> None:
        outputs.append(agent.ok("ps:restart", FLASK))

    threads = [threading.Thread(target=restart) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(300)
    assert len(outputs) == 2
    assert any("Waiting for the operation in progress on e2e-flask" in o for o in outputs)
    assert agent.get(HOST)[0] == 200


def test_two_pushes_at_once_the_second_is_refused_before_building(agent, flask, tmp_path):
    """Two pushes based on the same commit: the one that gets the app second finds its
    branch moved and is refused before building (git would refuse its ref update after
    the deploy); the branch and the live release are the first one's."""
    flask.push()  # the branch holds what this work tree holds
    other = WorkTree(tmp_path / "other", flask.user)
    shutil.copytree(flask.path, other.path)
    flask.write("first.txt", "1\n")
    flask.commit("first of two")
    other.write("second.txt", "2\n")
    other.commit("second of two")
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    trees = {"first": flask, "second": other}
    threads = [threading.Thread(target=lambda n=name: results.__setitem__(
        n, trees[n].push(check=False))) for name in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    [winner] = [name for name, result in results.items() if result.returncode == 0]
    [loser] = [name for name, result in results.items() if result.returncode != 0]
    refused = pushed(results[loser])
    assert "moved to" in refused and "fetch, merge and push again" in refused
    assert "Building" not in refused
    assert remote_head(agent, FLASK) == trees[winner].head()
    latest = json.loads(agent.ok("releases", FLASK, "--json"))[0]
    assert latest["state"] == "live"
    assert latest["description"] == f"Deploy {trees[winner].head()[:7]}"
    if winner == "second":  # later tests push from the first work tree
        flask.git("fetch", "-q", "deploy", "main")
        flask.git("reset", "-q", "--hard", "FETCH_HEAD")


def test_verbs_over_ssh(agent, developer):
    result = developer.ssh("apps --json")
    assert result.returncode == 0, result.stderr
    names = {app["name"] for app in json.loads(result.stdout)}
    assert {FLASK, "e2e-express", "e2e-static", "e2e-docker"} <= names
    quoted = developer.ssh(f"config:set {FLASK} 'SPACED=a b  c' --no-restart")
    assert quoted.returncode == 0, quoted.stderr
    assert developer.ssh(f"config:get {FLASK} SPACED").stdout == b"a b  c\n"
    shell = developer.ssh("bash -i")
    assert shell.returncode != 0 and b"invalid choice" in shell.stderr
    assert developer.ssh("agent").returncode != 0
    login = developer.ssh("")
    assert login.returncode != 0 and b"Berth offers no shell" in login.stderr
    bad_app = developer.ssh("git-receive-pack '../etc'")
    assert bad_app.returncode != 0 and b"invalid app name" in bad_app.stderr
    # No forwarding to the server's loopback (where the web instances are published).
    forward = subprocess.run(
        ["ssh", "-p", str(developer.ssh_port), "-i", str(developer.key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-W", f"127.0.0.1:{agent.http_port}", "berth@127.0.0.1"],
        input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=30, check=False)
    assert forward.returncode != 0 and b"prohibited" in forward.stderr, forward
    assert b"HTTP/1" not in forward.stdout


def test_run_one_off_commands(agent, developer):
    """`berth run`: the live release's image and config in a new container, output and
    exit status back over SSH as on the server; hanging up removes the container."""
    def one_offs() -> list[str]:
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=berth.app={FLASK}",
             "--filter", "label=berth.role=run"],
            capture_output=True, text=True, check=True).stdout.split()

    result = developer.ssh(f"run {FLASK} echo $SPACED from $DYNO; ls /app/app.py")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode().splitlines()
    assert out[0].startswith("a b c from run.") and out[1] == "/app/app.py"
    assert developer.ssh(f"run {FLASK} exit 3").returncode == 3
    local = agent.cli("run", FLASK, "--", "python3", "-c", "import sys; sys.exit(4)")
    assert local.returncode == 4, local.stderr
    missing = agent.cli("run", "no-such-app", "true")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")
    hung_up = subprocess.Popen(
        ["ssh", "-p", str(developer.ssh_port), "-i", str(developer.key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "berth@127.0.0.1", f"run {FLASK} echo started; sleep 600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert hung_up.stdout is not None
        assert hung_up.stdout.readline() == b"started\n"
        assert len(one_offs()) == 1
    finally:
        hung_up.kill()
        hung_up.communicate(timeout=10)
    assert wait_for(lambda: not one_offs(), timeout=60)
    assert agent.get(HOST)[0] == 200


def in_terminal(agent, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """`berth ARGS` as root on the server, its stdin and stdout a terminal (a pty)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([*agent.command(), *args], stdin=slave, stdout=slave,
                               stderr=slave, env=agent.env, cwd=agent.root)
    os.close(slave)
    return process, master


def read_until(master: int, want: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while want not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:  # the terminal's other end closed
                break
    return seen


def run_containers() -> list[str]:
    return docker_out("ps", "-aq", "--filter", f"label=berth.app={FLASK}",
                      "--filter", "label=berth.role=run").split()


def test_run_from_a_terminal_is_attached_to_the_containers(agent):
    """`berth run APP sh` on the server, from a terminal: keystrokes reach a shell with a
    terminal in a one-off container, its exit status is the command's; closing the
    terminal removes the container; --no-tty gives the plain output."""
    shell, master = in_terminal(agent, "run", FLASK, "sh")
    try:
        os.write(master, b"echo hello-$((6*7)) from $DYNO; tty; exit 3\r")
        seen = read_until(master, b"/dev/pts/")
        assert shell.wait(60) == 3
    finally:
        os.close(master)
    assert b"hello-42 from run." in seen, seen
    assert wait_for(lambda: not run_containers(), timeout=30)

    sleeper, master = in_terminal(agent, "run", FLASK, "sleep", "600")
    try:
        assert wait_for(lambda: len(run_containers()) == 1, timeout=60)
        sleeper.kill()  # the terminal's session is gone
        sleeper.wait(10)
    finally:
        os.close(master)
    assert wait_for(lambda: not run_containers(), timeout=60)

    plain, master = in_terminal(agent, "run", "--no-tty", FLASK, "tty; exit 5")
    try:
        seen = read_until(master, b"not a tty")
        assert plain.wait(60) == 5
    finally:
        os.close(master)
    assert b"not a tty" in seen, seen


def test_persistent_storage_outlives_releases(agent, developer):
    """storage:mount keeps a path across releases: what one release wrote, the next
    reads; the app user can write it; unmounting keeps the data on the host."""
    refused = agent.cli("storage:mount", FLASK, "/etc")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    mounted = agent.ok("storage:mount", FLASK, "/app/data")
    assert "/app/data of e2e-flask is kept in" in mounted and "Checking web.1" in mounted
    wrote = developer.ssh(f"run {FLASK} 'echo kept > /app/data/note && id -un'")
    assert wrote.returncode == 0 and wrote.stdout == b"berth\n", wrote
    agent.ok("config:set", FLASK, "STORAGE_CHECK=1")  # a new release, new containers
    assert developer.ssh(f"run {FLASK} cat /app/data/note").stdout == b"kept\n"
    web = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=berth.app={FLASK}",
         "--filter", "label=berth.process=web"], capture_output=True, text=True, check=True)
    mounts = subprocess.run(["docker", "inspect", "-f", "{{json .Mounts}}", web.stdout.split()[0]],
                            capture_output=True, text=True, check=True)
    (mount,) = json.loads(mounts.stdout)
    assert mount["Destination"] == "/app/data" and mount["RW"]
    listed = json.loads(agent.ok("storage", FLASK, "--json"))
    assert listed["mounts"] == [{"path": "/app/data", "host": mount["Source"]}]
    assert "Storage:    /app/data" in agent.ok("apps:info", FLASK)
    agent.ok("storage:unmount", FLASK, "/app/data")
    assert developer.ssh(f"run {FLASK} cat /app/data/note").returncode != 0
    assert Path(mount["Source"], "note").read_text() == "kept\n"
    assert agent.get(HOST)[0] == 200


def test_logs_follow_streams_new_lines(agent):
    process = subprocess.Popen(
        [*agent.command(), "logs", FLASK, "-f", "-n", "0", "--process", "worker"],
        env=agent.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # the worker prints a heartbeat every 2 s
        assert f"{FLASK}[worker.1 v{live_version(agent, FLASK)}]: worker heartbeat" in line
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_logs_keep_what_removed_instances_said(agent):
    """A restart (like a redeploy or a crash) removes containers; what they said,
    their shutdown included, stays in `berth logs` beside the new instance's lines."""
    before = agent.ok("logs", FLASK, "-n", "1000", "--process", "web").count("Shutting down: Master")
    agent.ok("ps:restart", FLASK)

    def goodbyes() -> str | None:
        out = agent.ok("logs", FLASK, "-n", "1000", "--process", "web")
        return out if out.count("Shutting down: Master") > before else None

    out = wait_for(goodbyes, timeout=60)
    assert out, "the replaced instance's last lines are not in the logs"
    assert "Listening at: http://0.0.0.0:5000" in out
    stamps = [line.split(" ", 1)[0] for line in out.splitlines()]
    assert stamps == sorted(stamps)
    assert len(agent.ok("logs", FLASK, "-n", "3").splitlines()) == 3


def live_version(agent, app: str) -> int:
    releases = json.loads(agent.ok("releases", app, "--json"))
    return next(r["version"] for r in releases if r["state"] == "live")


def test_logs_mark_each_line_with_the_release_it_came_from(agent):
    """After a deploy, the old instances' shutdown reads as the old release's, and the
    new instances' lines carry the new release: no shutdown looks like a crash."""
    old = live_version(agent, FLASK)
    agent.ok("config:set", FLASK, "LOG_MARK=1")  # a new release, new containers
    new = live_version(agent, FLASK)
    assert new > old
    goodbye = re.compile(rf"{FLASK}\[web\.\d v{old}\]: .*Shutting down: Master")
    hello = re.compile(rf"{FLASK}\[web\.\d v{new}\]: .*Listening at: http://0\.0\.0\.0:5000")

    def marked() -> str | None:
        out = agent.ok("logs", FLASK, "-n", "1000", "--process", "web")
        return out if goodbye.search(out) and hello.search(out) else None

    out = wait_for(marked, timeout=60)
    assert out, "the logs do not say which release each line came from"
    assert not re.search(rf"{FLASK}\[web\.\d\]: ", out)


def test_keys_are_listed_added_and_removed(agent, developer, tmp_path):
    from tests.e2e.harness import GitUser

    other = GitUser(tmp_path, developer.ssh_port)
    agent.ok("keys:add", "other", stdin=other.public_key)
    keys = {k["name"] for k in json.loads(agent.ok("keys", "--json"))}
    assert keys == {"dev", "other"}
    assert other.ssh("apps").returncode == 0
    duplicate = agent.cli("keys:add", "again", stdin=other.public_key)
    assert duplicate.returncode == 1 and "already added as 'other'" in duplicate.stderr
    agent.ok("keys:remove", "other")
    denied = other.ssh("apps")
    assert denied.returncode == 255  # ssh itself refuses: the key is gone
    garbage = agent.cli("keys:add", "bad", stdin=b"not a key")
    assert garbage.returncode == 1 and "invalid public key" in garbage.stderr


def test_clone_back_over_ssh(agent, developer, flask, tmp_path):
    clone = tmp_path / "clone"
    result = subprocess.run(["git", "clone", "-q", f"berth@127.0.0.1:{FLASK}", str(clone)],
                            env=developer.env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert (clone / "Procfile").exists()


def test_domains_route_and_refusals(agent):
    agent.ok("domains:add", FLASK, "www.example.org")
    assert agent.get("www.example.org")[0] == 200
    taken = agent.cli("domains:add", "e2e-static", "www.example.org")
    assert taken.returncode == 1 and "belongs to app e2e-flask" in taken.stderr
    wildcard = agent.cli("domains:add", FLASK, "*.example.org")
    assert wildcard.returncode == 1 and "wildcard" in wildcard.stderr
    agent.ok("domains:remove", FLASK, "www.example.org")
    assert agent.get("www.example.org")[0] == 404


def test_stop_start_and_destroy(agent):
    agent.ok("ps:stop", "e2e-static")
    assert agent.get(f"e2e-static.{DOMAIN}")[0] == 503
    agent.ok("ps:start", "e2e-static")
    assert agent.get(f"e2e-static.{DOMAIN}")[0] == 200
    refused = agent.cli("apps:destroy", "e2e-static")
    assert refused.returncode == 1 and "--confirm e2e-static" in refused.stderr
    agent.ok("apps:destroy", "e2e-static", "--confirm", "e2e-static")
    assert agent.get(f"e2e-static.{DOMAIN}")[0] == 404
    assert not (agent.root / "data" / "repos" / "e2e-static.git").exists()
    import docker

    client = docker.from_env()
    try:
        assert not client.containers.list(all=True, filters={"label": "berth.app=e2e-static"})
        assert not client.images.list(name="berth/e2e-static")
        assert not client.images.list(all=True, filters={"label": "berth.app=e2e-static"})
        assert "berth-e2e-static" not in {n.name for n in client.networks.list()}
    finally:
        client.close()


def test_only_root_and_berth_may_use_the_control_socket(agent):
    def as_user(user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", user, "--", *agent.command(), "apps"],
                              env=agent.env, capture_output=True, text=True, timeout=60,
                              check=False)

    assert as_user("berth").returncode == 0
    stranger = as_user("nobody")
    assert stranger.returncode == 1
    assert stranger.stderr.startswith("error: permission denied on ")
    assert stranger.stderr.count("\n") == 1
