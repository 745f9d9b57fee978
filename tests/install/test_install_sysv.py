"""The SysV init script install.sh writes for the agent where there is no systemd, run
for real in a temporary directory around a stand-in agent: `restart` starts the new
agent only once the old one has drained and let go of its ports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install.harness import fake_command, functions, run_shell

# Stands in for `berth agent`: holds "the ports" (a lock) from its start until it has
# drained, which takes a while after SIGTERM; a second agent cannot take them meanwhile.
AGENT = """
exec 9>>"{root}/ports"
flock -n 9 || {{ echo "bind failed" >>"{root}/events"; exit 1; }}
echo "started $$" >>"{root}/events"
trap 'sleep 1.5; echo "drained $$" >>"{root}/events"; exit 0' TERM
while :; do sleep 0.1; done
"""


@pytest.fixture
def init(tmp_path: Path) -> Iterator[Path]:
    """The init script and the respawning loop, written by install.sh into TMP_PATH."""
    root = tmp_path
    fake_command(root, "berth", AGENT.format(root=root))
    script = functions("read_settings", "supervisor_script", "supervisor_stop", "sysv_script",
                       "agent_init_script") + f"""
read_settings
SUPERVISOR={root}/berth-supervise SUPERVISE_PID={root}/supervise.pid
AGENT_PID={root}/agent.pid RESTARTS_FILE={root}/restarts AGENT_LOGS={root}/log
BERTH={root}/berth CONFIG={root}/berth.toml
supervisor_script >"$SUPERVISOR" && chmod 0755 "$SUPERVISOR"
agent_init_script >{root}/init && chmod 0755 {root}/init
"""
    written = run_shell(script, env={"PATH": "/usr/bin:/bin"})
    assert written.returncode == 0, written.stderr
    yield root / "init"
    supervisor, agent = (int(path.read_text()) if path.exists() else 0
                         for path in (root / "supervise.pid", root / "agent.pid"))
    try:
        stopped = subprocess.run(["sh", str(root / "init"), "stop"], capture_output=True,
                                 timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        stopped = False
    for kill, pid in ((os.killpg, supervisor), (os.kill, agent)):
        if not stopped and pid:  # whatever a failed stop left running
            try:
                kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def events(root: Path, count: int) -> list[str]:
    """The stand-in agents' events, once there are COUNT of them (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = (root / "events").read_text().splitlines() if (root / "events").exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return lines


def test_restart_starts_the_new_agent_once_the_old_one_has_drained(init: Path):
    root = init.parent
    started = subprocess.run(["sh", str(init), "start"], capture_output=True, timeout=30,
                             check=False)
    assert started.returncode == 0, started.stderr
    [first] = events(root, 1)
    restarted = subprocess.run(["sh", str(init), "restart"], capture_output=True, timeout=60,
                               check=False)
    assert restarted.returncode == 0, restarted.stderr
    old = first.split()[1]
    lines = events(root, 3)
    assert lines[:2] == [f"started {old}", f"drained {old}"]
    assert lines[2].startswith("started ") and len(lines) == 3, lines
    assert (root / "restarts").read_text() == "0\n"  # the new loop's agent bound at once


def test_stop_returns_once_the_agent_has_ended(init: Path):
    root = init.parent
    subprocess.run(["sh", str(init), "start"], capture_output=True, timeout=30, check=True)
    [first] = events(root, 1)
    stopped = subprocess.run(["sh", str(init), "stop"], capture_output=True, timeout=30,
                             check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert (root / "events").read_text().splitlines() == [first, f"drained {first.split()[1]}"]
    assert not (root / "supervise.pid").exists() and not (root / "agent.pid").exists()


def test_stop_ends_an_agent_whose_loop_is_gone(init: Path):
    root = init.parent
    subprocess.run(["sh", str(init), "start"], capture_output=True, timeout=30, check=True)
    [first] = events(root, 1)
    os.kill(int((root / "supervise.pid").read_text()), signal.SIGKILL)  # the loop alone,
    (root / "supervise.pid").unlink()  # and its pid file with it
    stopped = subprocess.run(["sh", str(init), "stop"], capture_output=True, timeout=30,
                             check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert (root / "events").read_text().splitlines() == [first, f"drained {first.split()[1]}"]
