"""`berth agent` refusing to start: one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import docker_problem

ROOT = Path(__file__).resolve().parents[2]


def start_agent(tmp_path: Path, *, docker_url: str, http_port: int) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "berth.toml"
    config.write_text(f"""
[paths]
data_dir = "{tmp_path / 'data'}"
run_dir = "{tmp_path / 'run'}"
log_dir = "{tmp_path / 'log'}"

[proxy]
listen = "127.0.0.1"
http_port = {http_port}
https_port = 0

[acme]
enabled = false

[firewall]
enabled = false

[docker]
url = "{docker_url}"
""")
    env = {**os.environ, "BERTH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "agent", "agent"], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(lines) == 1 and says in lines[0], result.stderr


def test_no_docker_engine_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-docker.sock"
    result = start_agent(tmp_path, docker_url=f"unix://{missing}", http_port=0)
    assert_one_line_refusal(result, f"cannot reach the Docker engine at unix://{missing}")


@pytest.mark.skipif(docker_problem() is not None, reason=f"needs docker: {docker_problem()}")
def test_a_taken_proxy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start_agent(tmp_path, docker_url="unix:///var/run/docker.sock",
                             http_port=port)
    assert_one_line_refusal(result, f"the proxy cannot listen on 127.0.0.1 (ports {port}, 0)")
