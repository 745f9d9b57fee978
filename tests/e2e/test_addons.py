"""Add-ons through a real agent and real pushes over SSH: the app's release phase sees
DATABASE_URL on the first push after addons:create, its instances reach the database by
name on the app's network, another app's do not, `addons:create` on a live app fails no
request, and a backup downloads over SSH byte for byte."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADDONS, APPS, DOMAIN, running_stack
from tests.e2e.harness import AgentProcess, GitUser, Load

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

APP, OTHER = "e2e-addon-a", "e2e-addon-b"
RELEASE = ("release: python3 -c \"import os, urllib.parse as u; "
           "p = u.urlsplit(os.environ['DATABASE_URL']); "
           "print('release sees', p.hostname, p.port, p.path)\"\n")
REACH = ("import os, socket, sys, urllib.parse as u\n"
         "p = u.urlsplit(sys.argv[1] if len(sys.argv) > 1 else os.environ['DATABASE_URL'])\n"
         "try: socket.create_connection((p.hostname, p.port), timeout=5).close(); print('reached')\n"
         "except OSError as exc: print('unreachable', type(exc).__name__); sys.exit(7)\n")


@pytest.fixture(scope="module")
def stack(e2e_root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    with running_stack(e2e_root, extra=ADDONS) as started:
        yield started
        for app in (APP, OTHER):  # add-ons first, or the app's network stays in use
            started[0].cli("apps:destroy", app, "--confirm", app)


def test_the_release_phase_and_instances_reach_the_addon(stack) -> None:
    agent, developer = stack
    agent.ok("apps:create", APP)
    created = agent.ok("addons:create", APP, "postgres")
    assert "postgres is ready; e2e-addon-a has DATABASE_URL" in created
    url = agent.ok("config:get", APP, "DATABASE_URL").strip()
    password = url.split(":")[2].split("@")[0]
    assert password not in created
    tree = developer.repo(APPS / "dockerfile", APP)
    tree.write("Procfile", "web: python3 server.py\n" + RELEASE)
    tree.commit("a release phase that reads DATABASE_URL")
    pushed = tree.push()
    said = pushed.stdout + pushed.stderr
    assert "release sees berth-addon-e2e-addon-a-postgres 5432 /e2e_addon_a" in said, said
    assert password not in said
    reached = agent.cli("run", APP, "--", "python3", "-c", REACH)
    assert reached.returncode == 0 and "reached" in reached.stdout, reached
    # Another app's instances are on another network: the name does not even resolve.
    other = developer.repo(APPS / "dockerfile", OTHER)
    assert "is live" in (lambda r: r.stdout + r.stderr)(other.push())
    refused = agent.cli("run", OTHER, "--", "python3", "-c", REACH, url)
    assert refused.returncode == 7 and "unreachable" in refused.stdout, refused


def test_addons_create_releases_the_app_with_no_request_failing(stack) -> None:
    """`addons:create` on a live app sets REDIS_URL, a new release that replaces its
    instances: clients sending requests all along (kept-alive and new connections) see
    no failure."""
    agent, _ = stack
    host = f"{OTHER}.{DOMAIN}"
    before = json.loads(agent.ok("apps:info", OTHER, "--json"))["release"]
    with Load(agent.http_port, host, clients=2) as kept, \
            Load(agent.http_port, host, clients=2, keep_alive=False) as fresh:
        _wait_for(lambda: kept.ok > 20 and fresh.ok > 20)
        created = agent.ok("addons:create", OTHER, "redis")
        answered = kept.ok + fresh.ok
        _wait_for(lambda: kept.ok + fresh.ok > answered + 40)
    failures = kept.failures + fresh.failures
    assert failures == [], (failures[:5], kept.statuses, fresh.statuses, agent.log_tail(30))
    assert set(kept.statuses) == set(fresh.statuses) == {200}
    assert f"redis is ready; {OTHER} has REDIS_URL" in created, created
    after = json.loads(agent.ok("apps:info", OTHER, "--json"))["release"]
    assert after != before, (before, after)  # the variable came with a new release
    assert agent.ok("config:get", OTHER, "REDIS_URL").startswith("redis://default:")


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_backup_downloads_over_ssh_byte_for_byte(stack) -> None:
    agent, developer = stack
    captured = agent.ok("backups:capture", APP)
    assert "b1: postgres" in captured
    listed = agent.ok("backups", APP, "--json")
    (backup,) = json.loads(listed)
    downloaded = developer.ssh(f"backups:download {APP} b1")
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.stdout == Path(backup["path"]).read_bytes()
    assert downloaded.stdout[:5] == b"PGDMP"


class Probe:
    """GETs to the app through the proxy, one every 20 ms, from a thread, until the
    block ends and one more answer has come (each answer's status kept)."""

    def __init__(self, agent: AgentProcess, host: str) -> None:
        self.agent, self.host = agent, host
        self.statuses: list[int] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Probe":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.statuses and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            finished = self._done.is_set()
            try:
                self.statuses.append(self.agent.get(self.host, timeout=5)[0])
            except OSError:
                self.statuses.append(0)
            if finished:
                return
            time.sleep(0.02)


def psql(sql: str) -> str:
    user = APP.replace("-", "_")
    done = subprocess.run(["docker", "exec", "-u", "postgres", f"berth-addon-{APP}-postgres",
                           "psql", "-U", user, "-d", user, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_restore_stops_the_app_meanwhile_and_brings_back_the_rows(stack) -> None:
    agent, _ = stack
    psql("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
    assert "b2: postgres" in agent.ok("backups:capture", APP)
    psql("INSERT INTO orders VALUES (2)")
    with Probe(agent, f"{APP}.{DOMAIN}") as probe:
        said = agent.ok("backups:restore", APP, "b2", "--confirm", APP)
    # Meanwhile the app answered 503 (no instance), never an error of a half-restored
    # database; before and after, 200.
    assert 503 in probe.statuses and set(probe.statuses) <= {200, 503}, probe.statuses
    assert probe.statuses[0] == 200 and probe.statuses[-1] == 200, probe.statuses
    # The deployer's own stop and start, around the restore: no instance writes into a
    # half-restored database.
    stop, restore, start = (said.index(f"Stopping {APP}'s instances for the restore"),
                            said.index("Restoring b2 into postgres"),
                            said.index(f"Starting {APP} again"))
    assert stop < restore < start, said
    assert psql("SELECT array_agg(id) FROM orders") == "{1}"
    assert agent.get(f"{APP}.{DOMAIN}")[0] == 200
    kinds = [e["kind"] for e in json.loads(agent.ok("apps:info", APP, "--json"))["events"]]
    assert kinds[:3] == ["BackupRestored", "AppStarted", "AppStopped"], kinds  # newest first


def test_destroying_the_app_backs_up_and_removes_its_addon(stack) -> None:
    agent, _ = stack
    said = agent.ok("apps:destroy", APP, "--confirm", APP)
    assert "b3: postgres" in said and "postgres destroyed" in said, said
    gone = subprocess.run(["docker", "inspect", "berth-addon-e2e-addon-a-postgres"],
                          capture_output=True, check=False)
    assert gone.returncode != 0
    kept = agent.root / "data" / "backups" / APP / "b3-postgres.dump"
    assert kept.read_bytes()[:5] == b"PGDMP"
