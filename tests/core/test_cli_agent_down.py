"""What the CLI says when the agent is not running (how to start it on this system), and
certs:renew's exit status when a renewal failed."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli.registry import Context
from agent.cli.starthint import (
    SUPERVISOR,
    SYSTEMD_RUNNING,
    SYSTEMD_UNIT,
    SYSV_SCRIPT,
    restart_hint,
    start_hint,
)
from agent.cli.verbs.certs import failed_renewals, renew

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("present, hint", [
    ({SYSTEMD_UNIT, SYSTEMD_RUNNING}, "`systemctl start berth` (why it stopped: `journalctl -u berth`)"),
    ({SYSV_SCRIPT}, "`/etc/init.d/berth start` (why it stopped: /var/log/berth/agent.log)"),
    ({SUPERVISOR, SYSTEMD_UNIT}, "`setsid /usr/local/sbin/berth-supervise &`"),
    (set(), "`berth agent` as root"),
])
def test_the_hint_follows_how_berth_was_installed(present, hint):
    assert hint in start_hint(lambda path: path in present)


@pytest.mark.parametrize("present, hint", [
    ({SYSTEMD_UNIT, SYSTEMD_RUNNING}, "`systemctl restart berth`"),
    ({SYSV_SCRIPT}, "`/etc/init.d/berth reload`"),
    ({SUPERVISOR, SYSTEMD_UNIT}, "`kill -HUP $(cat /run/berth-agent.pid)`"),
    (set(), "SIGHUP"),
])
def test_the_restart_hint_restarts_without_closing_the_ports(present, hint):
    assert hint in restart_hint(lambda path: path in present)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "berth.toml"
    config.write_text(f'[paths]\nrun_dir = "{tmp_path / "run"}"\ndata_dir = "{tmp_path}"\n')
    env = {**os.environ, "BERTH_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agent", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_no_socket_says_how_to_start_the_agent(tmp_path):
    result = run_cli(tmp_path, "apps")
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "the agent is not running" in result.stderr and start_hint() in result.stderr


def test_a_dead_agents_socket_says_the_same(tmp_path):
    (tmp_path / "run").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "run" / "control.sock"))
    stale.close()  # the file stays, nothing listens: an agent that died
    result = run_cli(tmp_path, "apps")
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "nothing answers" in result.stderr and start_hint() in result.stderr


class RenewingClient:
    def __init__(self, certificates: list[dict[str, Any]]) -> None:
        self.certificates = certificates

    def call(self, method: str, url: str, **_: Any) -> dict[str, Any]:
        assert (method, url) == ("POST", "/certs/renew")
        return {"certificates": self.certificates, "text": "table\n"}


def renew_status(certificates: list[dict[str, Any]]) -> tuple[int, str]:
    err = io.StringIO()
    ctx = Context(client=RenewingClient(certificates), out=io.StringIO(), err=err)  # type: ignore[arg-type]
    code = renew(ctx, type("Args", (), {"target": "web", "force": False})())
    return code, err.getvalue()


def test_certs_renew_exits_non_zero_when_a_renewal_failed():
    ok = {"domain": "web.example.com", "state": "valid", "last_error": None}
    bad = {"domain": "www.example.com", "state": "failing", "last_error": "DNS problem: NXDOMAIN"}
    assert renew_status([ok]) == (0, "")
    assert renew_status([ok, bad]) == (
        1, "error: www.example.com: renewal failed: DNS problem: NXDOMAIN\n")
    assert failed_renewals([{"domain": "a.example.com", "state": "expired"}]) == [
        "a.example.com: renewal failed: expired"]


def test_version_lines_say_when_the_running_agent_is_not_the_installed_one():
    from agent.installed import build_id, describe_versions

    assert build_id("a,sha256=x,1\n") != build_id("a,sha256=y,1\n")
    assert describe_versions("0.1.0+aa", "0.1.0+aa", "`systemctl restart berth`") == [
        "berth 0.1.0+aa (installed)", "agent 0.1.0+aa (running)"]
    assert describe_versions("0.1.0+bb", "0.1.0+aa", "`systemctl restart berth`")[1] == (
        "agent 0.1.0+aa (running; not the installed one: restart it, `systemctl restart berth`)")
    assert describe_versions("0.1.0+bb", None, "x") == ["berth 0.1.0+bb (installed)"]
