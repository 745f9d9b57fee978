#!/usr/bin/env python3
"""Deploy benchmark: push-to-live next to the floor of `docker build` + `docker run`.

Run as root on a machine prepared by tests/run (Docker engine, sshd, the `berth` user,
the stand-in base image, the test virtualenv):

    /opt/berth-test/venv/bin/python bench/deploy.py [--redeploys 10] [--apps 10]

It starts a real agent and sshd (the end-to-end test harness), then measures, in the
same run:
  1. the floor: the Flask sample built with a hand-written Dockerfile of the same
     dependency layering and started with `docker run`, until it answers HTTP (cold with
     --no-cache, then code-only changes). Two hand Dockerfiles: the conventional one
     (CMD last, as Dockerfiles are written by hand) and one with the code's COPY last
     (as Berth's buildpacks write it: a code change then rebuilds a single layer);
  2. Berth: `git push` of the same app until the push returns with the app live (first
     deploy, then code-only redeploys, each next to one build of each floor so the
     machine's drift hits all three alike), and the ratio to the floors (target:
     redeploy within 1.3x of the conventional one; the copy-last one is reported as a
     stricter reference); also an SSH session alone (`ssh berth@host version`), which
     every push pays and the floors do not;
  3. a bounded load through the proxy during the redeploys: failed requests (target 0);
  4. the agent's RSS at rest with N apps deployed (target under 80 MB).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.deploy.docker_runtime import installation_id
from tests.conftest import STAND_IN_IMAGE
from tests.e2e.conftest import APPS, DOMAIN, running_stack
from tests.e2e.harness import (
    AgentProcess,
    GitUser,
    Load,
    WorkTree,
    free_port,
    http_get,
    world_readable_tempdir,
)

_HAND_DEPENDENCIES = f"""FROM {STAND_IN_IMAGE}
ENV PORT=5000
COPY ca.crt /tmp/ca.crt
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY requirements.txt .
RUN PIP_CERT=/tmp/ca.crt /opt/venv/bin/pip install -r requirements.txt
"""
QUIET = 1.5  # seconds after a push for its background work (old container, images)
# The floor is the app built and run by hand: the conventional Dockerfile. The
# copy-last one is a stricter reference (the same one-layer-per-push layering as Berth's
# buildpacks), reported beside it.
FLOOR_ROLES = {"conventional": "(target <= 1.3x)", "copy-last": "(stricter reference)"}
_HAND_CMD = 'CMD ["/opt/venv/bin/gunicorn", "app:app", "--bind", "0.0.0.0:5000"]\n'
# The two hand-written floors: CMD last (the usual way), and the code's COPY last.
HAND_DOCKERFILES = {
    "conventional": _HAND_DEPENDENCIES + "COPY . .\n" + _HAND_CMD,
    "copy-last": _HAND_DEPENDENCIES + _HAND_CMD + "COPY . .\n",
}


def wait_http(port: int, host: str, want: bytes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, host, timeout=2)
            if status == 200 and want in body:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer containing {want!r} on {port}")


def floor(work: Path, marker: str, tag: str, *, cold: bool = False) -> float:
    """docker build + docker run until the app answers: what a user does by hand."""
    (work / "app.py").write_text((APPS / "flask" / "app.py").read_text().replace("hello", marker))
    port = free_port()
    name = f"bench-floor-{marker}"
    started = time.monotonic()
    cache = ["--no-cache"] if cold else []
    subprocess.run(["docker", "build", "-q", *cache, "-t", tag, str(work)], check=True,
                   capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5000", tag],
                   check=True, capture_output=True)
    try:
        wait_http(port, "localhost", marker.encode())
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def hand_trees(root: Path) -> dict[str, Path]:
    """A copy of the Flask sample per hand-written Dockerfile."""
    trees = {}
    for name, text in HAND_DOCKERFILES.items():
        hand = root / f"hand-{name}"
        shutil.copytree(APPS / "flask", hand)
        (hand / "Dockerfile").write_text(text)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", hand / "ca.crt")
        trees[name] = hand
    return trees


class SharedConnectionUser(GitUser):
    """The same developer with SSH connection sharing on (the README's tip): pushes
    after the first reuse one SSH connection instead of a new handshake each."""

    @staticmethod
    def control_path(root: Path) -> Path:
        return root / "ssh-shared"

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["GIT_SSH_COMMAND"] += (f" -o ControlMaster=auto -o ControlPersist=60"
                                   f" -o ControlPath={self.control_path(self.root)}")
        return env


@dataclass
class BerthFigures:
    first: float = 0.0
    quiet: list[float] = field(default_factory=list)
    floors: dict[str, list[float]] = field(default_factory=dict)
    shared: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    ssh: float = 0.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    rss: float = 0.0


def measure_berth(
    agent: AgentProcess, user: GitUser, hands: dict[str, Path], tag: str,
    redeploys: int, apps: int,
) -> BerthFigures:
    """Push-to-live (first, quiet redeploys each next to the floors, redeploys under
    load), SSH cost, RSS."""
    figures = BerthFigures(floors={name: [] for name in hands})
    # A new name: no layer of an earlier run is reused (the builder labels layers with
    # the app), so the first push installs its dependencies like the cold floor.
    app = f"bench-flask-{secrets.token_hex(3)}"
    host = f"{app}.{DOMAIN}"
    work = user.repo(APPS / "flask", app)
    started = time.monotonic()
    work.push()
    figures.first = time.monotonic() - started

    def redeploy_once(marker: str, tree: WorkTree = work) -> float:
        work.write("app.py", (APPS / "flask" / "app.py").read_text().replace("hello", marker))
        work.commit(marker)
        started = time.monotonic()
        tree.push()
        elapsed = time.monotonic() - started
        # Live when the push returns: the new code answers at once.
        status, body = http_get(agent.http_port, host)
        assert status == 200 and marker.encode() in body, (status, body)
        return elapsed

    def ssh_round_trip() -> float:
        started = time.monotonic()
        assert user.ssh("version").returncode == 0
        return time.monotonic() - started

    shared = WorkTree(work.path, SharedConnectionUser(user.root, user.ssh_port))
    redeploy_once("shared-warmup", shared)  # opens the shared connection
    for name, hand in hands.items():  # warm each floor's dependency layers
        floor(hand, f"{name}-warmup", tag)
    for i in range(redeploys):
        # Each measurement starts on a quiet machine: after a push, Berth stops the old
        # container and prunes an image in the background; that is its cost, not the
        # next measurement's.
        for name, hand in hands.items():
            figures.floors[name].append(floor(hand, f"{name}{i}", tag))
        figures.quiet.append(redeploy_once(f"quiet{i}"))
        time.sleep(QUIET)
        figures.shared.append(redeploy_once(f"shared{i}", shared))
        time.sleep(QUIET)
    figures.ssh = statistics.median(ssh_round_trip() for _ in range(5))
    control = f"ControlPath={SharedConnectionUser.control_path(user.root)}"
    subprocess.run(["ssh", "-O", "exit", "-o", control, "berth@127.0.0.1"],
                   capture_output=True, check=False)
    with Load(agent.http_port, host, clients=4) as load:
        figures.loaded = [redeploy_once(f"loaded{i}") for i in range(redeploys)]
    figures.ok, figures.failures = load.ok, load.failures
    for i in range(apps - 1):
        user.repo(APPS / "dockerfile", f"bench-app{i}-{secrets.token_hex(2)}").push()
    time.sleep(5)
    assert agent.process is not None
    figures.rss = rss_mb(agent.process.pid)
    return figures


def report(floor_cold: float, apps: int, figures: BerthFigures) -> None:
    first, quiet, loaded = figures.first, figures.quiet, figures.loaded
    redeploy = statistics.median(quiet)
    print(f"floor (docker build --no-cache + run), cold: {floor_cold:6.2f} s")
    print(f"berth first push to live:                    {first:6.2f} s  "
          f"({first / floor_cold:.2f}x the cold floor)")
    print(f"berth code-only push to live (median of {len(quiet)}): {redeploy:6.2f} s"
          f"  (range {min(quiet):.2f}-{max(quiet):.2f})")
    for name, times in figures.floors.items():
        warm = statistics.median(times)
        print(f"  floor, {name} Dockerfile (docker build + run, median): {warm:6.2f} s"
              f"  -> berth {redeploy / warm:.2f}x {FLOOR_ROLES[name]}")
    print(f"  of which an SSH session alone (ssh berth@host version, median): "
          f"{figures.ssh:.2f} s")
    if figures.shared:
        shared = statistics.median(figures.shared)
        ratios = ", ".join(f"{shared / statistics.median(t):.2f}x {name}"
                           for name, t in figures.floors.items())
        print(f"berth code-only push with SSH connection sharing (median of "
              f"{len(figures.shared)}): {shared:6.2f} s  -> {ratios}")
    print(f"load during {len(loaded)} more redeploys (median {statistics.median(loaded):.2f} s"
          f" each): {figures.ok} ok, {len(figures.failures)} failed (target 0) "
          f"{figures.failures[:3]}")
    print(f"agent RSS at rest with {apps} apps: {figures.rss:.1f} MB (target < 80 MB)")


def remove_bench_leftovers(root: Path, tag: str) -> None:
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    mine = f"label=berth.managed={installation_id(root / 'data')}"
    for line in subprocess.run(["docker", "ps", "-aq", "--filter", mine],
                               capture_output=True, text=True, check=False).stdout.split():
        subprocess.run(["docker", "rm", "-f", line], capture_output=True, check=False)
    images = subprocess.run(["docker", "images", "-q", "--filter", "reference=berth/bench-*"],
                            capture_output=True, text=True, check=False).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redeploys", type=int, default=10)
    parser.add_argument("--apps", type=int, default=10)
    args = parser.parse_args()
    root = world_readable_tempdir("berth-bench-")
    tag = "berth-bench/floor:latest"
    try:
        hands = hand_trees(root)
        floor_cold = floor(hands["conventional"], "cold", tag, cold=True)
        with running_stack(root) as (agent, user):
            figures = measure_berth(agent, user, hands, tag, args.redeploys, args.apps)
        report(floor_cold, args.apps, figures)
        return 0
    finally:
        remove_bench_leftovers(root, tag)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
