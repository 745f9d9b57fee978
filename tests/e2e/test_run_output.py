"""`berth run` output through a real agent, on the server and over SSH: every byte, in
order, with the command's exit status, and the agent's memory back where it was."""

from __future__ import annotations

import hashlib
import random
import subprocess

import pytest

from tests.e2e.conftest import APPS, DOMAIN

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

APP = "e2e-run-output"
MEGABYTES = 100
RANDOM = ("python3 -c 'import random, sys; r = random.Random(7); "
          f"[sys.stdout.buffer.write(r.randbytes(1 << 20)) for _ in range({MEGABYTES})]'")
LINES = 10_000_000


def random_bytes_digest() -> str:
    rng, digest = random.Random(7), hashlib.sha256()
    for _ in range(MEGABYTES):
        digest.update(rng.randbytes(1 << 20))
    return digest.hexdigest()


def lines_digest() -> str:
    return hashlib.sha256("".join(f"{n}\n" for n in range(1, LINES + 1)).encode()).hexdigest()


def rss_kib(agent) -> int:
    with open(f"/proc/{agent.process.pid}/status") as handle:
        status = handle.read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.fixture(scope="module")
def pushed(developer) -> None:
    result = developer.repo(APPS / "dockerfile", APP).push()
    assert f"is live: http://{APP}.{DOMAIN}" in result.stdout + result.stderr


def run_locally(agent, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*agent.command(), "run", APP, command], env=agent.env,
                          capture_output=True, cwd=agent.root, timeout=900, check=False)


def test_100_mb_arrive_byte_exact_on_the_server_and_over_ssh(agent, developer, pushed) -> None:
    agent.ok("run", APP, "true")  # the agent's one-off machinery loaded: the baseline
    before = rss_kib(agent)
    expected = random_bytes_digest()
    local = run_locally(agent, RANDOM + "; exit 5")
    assert local.returncode == 5, local.stderr[-500:]
    assert (len(local.stdout), hashlib.sha256(local.stdout).hexdigest()) == (
        MEGABYTES << 20, expected)
    # Words as ssh passes them: the `;` stands alone, so it stays the shell's.
    remote = developer.ssh(f"run {APP} {RANDOM} ; echo done >&2", timeout=900)
    assert remote.returncode == 0, remote.stderr[-500:]
    assert hashlib.sha256(remote.stdout).hexdigest() == expected
    assert remote.stderr.endswith(b"done\n")
    assert rss_kib(agent) < before + 30 * 1024, "the agent kept the output in memory"


def test_ten_million_lines_arrive_byte_exact(agent, developer, pushed) -> None:
    expected = lines_digest()
    local = run_locally(agent, f"seq 1 {LINES}")
    assert local.returncode == 0 and hashlib.sha256(local.stdout).hexdigest() == expected
    remote = developer.ssh(f"run {APP} seq 1 {LINES}; exit 3", timeout=900)
    assert remote.returncode == 3 and hashlib.sha256(remote.stdout).hexdigest() == expected
