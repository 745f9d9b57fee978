#!/usr/bin/env python3
"""Failover benchmark: requests lost when instances die, config changes race and the
agent restarts; time to replace a killed instance; the agent's memory around `run`.

Run as root on a machine prepared by tests/run (Docker engine, sshd, the `berth` user,
the stand-in base image, the test virtualenv):

    /opt/berth-test/venv/bin/python bench/failover.py [--seconds 8]

It starts a real agent and sshd (the end-to-end test harness), pushes the Dockerfile
sample app, and in the same run, each time under keep-alive GET load through the proxy
(4 clients), counts failed/total requests (a failure is a connection error or a 5xx) when:
  1. the only web instance is killed (`docker kill`): the app is down until its
     replacement answers, so failures are expected; the time to the first answer again;
  2. one of two web instances is killed (target 0 failed: the other one serves);
  3. two `config:set` race (target 0 failed, and both variables stay);
  4. the agent restarts as an upgrade or the service manager restarts it: in place
     (SIGHUP) and socket-activated (systemd's stop and start with the same sockets);
     target 0 failed, its listening sockets outlive it (bench/restarts.py);
  5. the agent is stopped (SIGTERM, then started) and crashes (`kill -9`, then
     started): nothing listens in between, so failures are expected;
and the time from `docker kill` to the replacement running, and the agent's RSS before
and after 100 MB of `run` output (target: back near the baseline).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker

from agent.deploy.docker_runtime import installation_id
from agent.deploy.networks import app_network
from bench import restarts
from bench.deploy import rss_mb
from tests.e2e.conftest import APPS, DOMAIN, running_stack
from tests.e2e.harness import AgentProcess, GitUser, Load, http_get, world_readable_tempdir

CLIENTS = 4
RUN_BYTES = 100_000_000


@dataclass
class Outcome:
    """What the load saw during one scenario."""

    name: str
    ok: int = 0
    failed: int = 0
    first_failure: float | None = None
    last_failure: float | None = None
    notes: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # failures: status or error

    @property
    def window(self) -> float:
        """Seconds from the first failed request to the last one (0 with none)."""
        if self.first_failure is None or self.last_failure is None:
            return 0.0
        return self.last_failure - self.first_failure


class TimedLoad(Load):
    """The tests' keep-alive load, also counting each failure's kind and time."""

    def __init__(self, port: int, host: str, outcome: Outcome) -> None:
        super().__init__(port, host, clients=CLIENTS, timeout=10)
        self.outcome = outcome

    def _record(self, status: int | None, error: BaseException | None) -> None:
        super()._record(status, error)
        outcome = self.outcome
        if status is not None and status < 500:
            outcome.ok += 1
            return
        now = time.monotonic()
        failure = f"status {status}" if status is not None else type(error).__name__
        outcome.failed += 1
        outcome.kinds[failure] = outcome.kinds.get(failure, 0) + 1
        outcome.first_failure = outcome.first_failure or now
        outcome.last_failure = now


def web_containers(app: str) -> dict[str, str]:
    """Running web instances of the app: container id -> dyno index."""
    client = docker.from_env()
    try:
        found = client.containers.list(
            filters={
                "label": [f"berth.app={app}", "berth.process=web", "berth.role=process"],
                "status": "running",
            }
        )
        return {c.id: c.labels["berth.index"] for c in found}
    finally:
        client.close()


def wait_for(check: Callable[[], bool], timeout: float = 60, step: float = 0.02) -> float:
    """Seconds until `check()` holds; raises past the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise RuntimeError(f"not within {timeout} s: {check}")


def answers(port: int, host: str) -> bool:
    try:
        return http_get(port, host, timeout=2)[0] == 200
    except OSError:
        return False


def under_load(
    agent: AgentProcess, host: str, name: str, seconds: float, fault: Callable[[Outcome], None]
) -> Outcome:
    """`seconds` of load with `fault` applied after a third of it, then the rest."""
    outcome = Outcome(name)
    with TimedLoad(agent.http_port, host, outcome):
        time.sleep(seconds / 3)
        started = time.monotonic()
        fault(outcome)
        time.sleep(max(0.0, seconds - seconds / 3 - (time.monotonic() - started)))
    return outcome


def kill_one(agent: AgentProcess, app: str, host: str) -> Callable[[Outcome], None]:
    """A fault: `docker kill` of one web instance; notes the time to its replacement."""

    def fault(outcome: Outcome) -> None:
        before = web_containers(app)
        victim, index = min(before.items(), key=lambda item: item[1])
        killed = time.monotonic()
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)

        def replaced() -> bool:
            now = web_containers(app)
            return victim not in now and index in now.values()

        wait_for(replaced)
        running = time.monotonic() - killed
        outcome.notes.append(f"replacement running after {running:.2f} s")
        if len(before) == 1:
            serving = wait_for(lambda: answers(agent.http_port, host))
            outcome.notes.append(
                f"answering again {time.monotonic() - killed:.2f} s "
                f"after the kill (+{serving:.2f} s after running)"
            )

    return fault


def config_race(agent: AgentProcess, app: str) -> Callable[[Outcome], None]:
    """A fault: two `config:set` at once; notes whether both variables stayed."""

    def fault(outcome: Outcome) -> None:
        token = secrets.token_hex(3)
        changes = [f"RACE_A={token}", f"RACE_B={token}"]
        results: list[subprocess.CompletedProcess[str]] = []
        threads = [
            threading.Thread(
                target=lambda c=c: results.append(agent.cli("config:set", app, c, timeout=300))
            )
            for c in changes
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(320)
        failed = [r.stderr.strip() for r in results if r.returncode != 0]
        kept = [
            c
            for c in changes
            if agent.cli("config:get", app, c.split("=")[0]).stdout.strip() == token
        ]
        outcome.notes.append(
            f"{len(kept)} of 2 variables kept" + (f"; failed: {failed}" if failed else "")
        )

    return fault


def run_output_rss(agent: AgentProcess, app: str) -> str:
    """The agent's RSS after a first `run`, right after 100 MB of output, and 5 s later."""
    agent.ok("run", app, "true")
    assert agent.process is not None
    before = rss_mb(agent.process.pid)
    result = subprocess.run(
        [*agent.command(), "run", app, f"head -c {RUN_BYTES} /dev/zero"],
        check=False,
        env=agent.env,
        cwd=agent.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"run failed: {result.stderr[-300:]!r}")
    right_after = rss_mb(agent.process.pid)
    time.sleep(5)
    later = rss_mb(agent.process.pid)
    return (
        f"agent RSS around 100 MB of `run` output: {before:.1f} MB before, "
        f"{right_after:.1f} MB right after, {later:.1f} MB 5 s later"
    )


def scenarios(
    agent: AgentProcess, user: GitUser, app: str, seconds: float
) -> tuple[list[Outcome], str]:
    host = f"{app}.{DOMAIN}"
    user.repo(APPS / "dockerfile", app).push()
    wait_for(lambda: answers(agent.http_port, host))
    outcomes = [
        under_load(agent, host, "the only web instance killed", seconds, kill_one(agent, app, host))
    ]
    agent.ok("ps:scale", app, "web=2")
    wait_for(lambda: len(web_containers(app)) == 2)
    outcomes.append(
        under_load(
            agent, host, "one of two web instances killed", seconds, kill_one(agent, app, host)
        )
    )
    outcomes.append(
        under_load(agent, host, "two config changes race (web=2)", seconds, config_race(agent, app))
    )
    outcomes += agent_restarts(agent, host, seconds)
    return outcomes, run_output_rss(agent, app)


def agent_restarts(agent: AgentProcess, host: str, seconds: float) -> list[Outcome]:
    """The agent restarted the ways an upgrade and a service manager restart it (its
    sockets kept: target 0 failed), then stopped and crashed (nothing listens between)."""
    outcomes = [under_load(agent, host, "restart in place (SIGHUP)", seconds,
                           restarts.in_place(agent))]
    with restarts.held_sockets(agent) as sockets:
        outcomes.append(under_load(agent, host, "restart, socket-activated", seconds,
                                   restarts.socket_activated(agent, sockets)))
    outcomes.append(under_load(agent, host, "stop (SIGTERM), then start", seconds,
                               restarts.stop_start(agent, kill=False)))
    outcomes.append(under_load(agent, host, "crash (kill -9), then start", seconds,
                               restarts.stop_start(agent, kill=True)))
    return outcomes


def report(outcomes: list[Outcome], rss: str) -> None:
    print(f"{'scenario':<40} {'failed/total':>14} {'failure window':>15}  notes")
    for outcome in outcomes:
        total = outcome.ok + outcome.failed
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(outcome.kinds.items()))
        notes = outcome.notes + ([f"failures: {kinds}"] if kinds else [])
        print(
            f"{outcome.name:<40} {outcome.failed:>6}/{total:<7} {outcome.window:>13.2f} s"
            f"  {'; '.join(notes)}"
        )
    print(rss)


def remove_leftovers(root: Path, app: str) -> None:
    """What the bench's agent left on the engine, if `apps:destroy` did not run: its
    containers (by the installation's label), the app's images and network."""
    client = docker.from_env()
    try:
        mine = f"berth.managed={installation_id(root / 'data')}"
        for container in client.containers.list(all=True, filters={"label": mine}):
            container.remove(force=True)
        for image in client.images.list(name=f"berth/{app}"):
            client.images.remove(image.id, force=True)
        for network in client.networks.list(names=[app_network(app)]):
            if network.name == app_network(app):
                network.remove()
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="load per scenario (the fault comes after a third of it)",
    )
    args = parser.parse_args()
    root = world_readable_tempdir("berth-bench-")
    app = f"bench-failover-{secrets.token_hex(3)}"
    try:
        with running_stack(root) as (agent, user):
            try:
                outcomes, rss = scenarios(agent, user, app, args.seconds)
            finally:
                agent.cli("apps:destroy", app, "--confirm", app)
        report(outcomes, rss)
        return 0
    finally:
        try:
            remove_leftovers(root, app)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
