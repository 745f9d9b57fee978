#!/usr/bin/env python3
"""Deploy benchmark: push-to-live next to the floor of `docker build` + `docker run`.

Run as root on a machine prepared by tests/run (Docker engine, sshd, the `berth` user,
the stand-in base image, the test virtualenv):

    /opt/berth-test/venv/bin/python bench/deploy.py [--redeploys 10] [--apps 10]

It starts a real agent and sshd (the end-to-end test harness), then measures, in the
same run:
  1. the floor: the Flask sample built with a hand-written Dockerfile of the same layering
     and started with `docker run`, until it answers HTTP (cold with --no-cache, then a
     code-only change);
  2. Berth: `git push` of the same app until the push returns with the app live (first
     deploy, then code-only redeploys), and the ratio to the floor (target: redeploy
     within 1.3x);
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
from pathlib import Path
from dataclasses import dataclass, field

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.deploy.docker_runtime import installation_id  # noqa: E402
from tests.conftest import STAND_IN_IMAGE  # noqa: E402
from tests.e2e.conftest import APPS, DOMAIN, running_stack  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    AgentProcess, GitUser, Load, free_port, http_get, world_readable_tempdir,
)

HAND_DOCKERFILE = f"""FROM {STAND_IN_IMAGE}
COPY ca.crt /tmp/ca.crt
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY requirements.txt .
RUN PIP_CERT=/tmp/ca.crt /opt/venv/bin/pip install -r requirements.txt
COPY . .
ENV PORT=5000
CMD ["/opt/venv/bin/gunicorn", "app:app", "--bind", "0.0.0.0:5000"]
"""


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
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure_floor(root: Path, tag: str) -> tuple[float, float]:
    """The bare floor: cold (--no-cache), then the median of three code-only changes."""
    hand = root / "hand"
    shutil.copytree(APPS / "flask", hand)
    (hand / "Dockerfile").write_text(HAND_DOCKERFILE)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", hand / "ca.crt")
    cold = floor(hand, "cold", tag, cold=True)
    warm = statistics.median(floor(hand, f"warm{i}", tag) for i in range(3))
    return cold, warm


@dataclass
class BerthFigures:
    first: float = 0.0
    quiet: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    ssh: float = 0.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    rss: float = 0.0


def measure_berth(agent: AgentProcess, user: GitUser, redeploys: int, apps: int) -> BerthFigures:
    """Push-to-live (first, quiet redeploys, redeploys under load), SSH cost, RSS."""
    figures = BerthFigures()
    # A new name: no layer of an earlier run is reused (the builder labels layers with
    # the app), so the first push installs its dependencies like the cold floor.
    app = f"bench-flask-{secrets.token_hex(3)}"
    host = f"{app}.{DOMAIN}"
    work = user.repo(APPS / "flask", app)
    started = time.monotonic()
    work.push()
    figures.first = time.monotonic() - started

    def redeploy_once(marker: str) -> float:
        work.write("app.py", (APPS / "flask" / "app.py").read_text().replace("hello", marker))
        work.commit(marker)
        started = time.monotonic()
        work.push()
        elapsed = time.monotonic() - started
        # Live when the push returns: the new code answers at once.
        status, body = http_get(agent.http_port, host)
        assert status == 200 and marker.encode() in body, (status, body)
        return elapsed

    figures.quiet = [redeploy_once(f"quiet{i}") for i in range(redeploys)]

    def ssh_round_trip() -> float:
        started = time.monotonic()
        assert user.ssh("version").returncode == 0
        return time.monotonic() - started

    figures.ssh = statistics.median(ssh_round_trip() for _ in range(5))
    with Load(agent.http_port, host, clients=4) as load:
        figures.loaded = [redeploy_once(f"loaded{i}") for i in range(redeploys)]
    figures.ok, figures.failures = load.ok, load.failures
    for i in range(apps - 1):
        user.repo(APPS / "dockerfile", f"bench-app{i}-{secrets.token_hex(2)}").push()
    time.sleep(5)
    assert agent.process is not None
    figures.rss = rss_mb(agent.process.pid)
    return figures


def report(floor_cold: float, floor_warm: float, apps: int, figures: BerthFigures) -> None:
    first, quiet, loaded = figures.first, figures.quiet, figures.loaded
    redeploy = statistics.median(quiet)
    print(f"floor (docker build + run), cold:        {floor_cold:6.1f} s")
    print(f"floor (docker build + run), code change: {floor_warm:6.1f} s")
    print(f"berth first push to live:                {first:6.1f} s  "
          f"({first / floor_cold:.2f}x the cold floor)")
    print(f"berth code-only push to live (median of {len(quiet)}): {redeploy:6.1f} s  "
          f"({redeploy / floor_warm:.2f}x the floor; target <= 1.3x)")
    print(f"  of which an SSH session alone (ssh berth@host version, median): "
          f"{figures.ssh:.2f} s")
    print(f"load during {len(loaded)} more redeploys (median {statistics.median(loaded):.1f} s"
          f" each): {figures.ok} ok, {len(figures.failures)} failed (target 0) "
          f"{figures.failures[:3]}")
    print(f"agent RSS at rest with {apps} apps: {figures.rss:.1f} MB (target < 80 MB)")


def remove_bench_leftovers(root: Path, tag: str) -> None:
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    mine = f"label=berth.managed={installation_id(root / 'data')}"
    for line in subprocess.run(["docker", "ps", "-aq", "--filter", mine],
                               capture_output=True, text=True).stdout.split():
        subprocess.run(["docker", "rm", "-f", line], capture_output=True)
    images = subprocess.run(["docker", "images", "-q", "--filter", "reference=berth/bench-*"],
                            capture_output=True, text=True).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redeploys", type=int, default=10)
    parser.add_argument("--apps", type=int, default=10)
    args = parser.parse_args()
    root = world_readable_tempdir("berth-bench-")
    tag = "berth-bench/floor:latest"
    try:
        floor_cold, floor_warm = measure_floor(root, tag)
        with running_stack(root) as (agent, user):
            figures = measure_berth(agent, user, args.redeploys, args.apps)
        report(floor_cold, floor_warm, args.apps, figures)
        return 0
    finally:
        remove_bench_leftovers(root, tag)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
