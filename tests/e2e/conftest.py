"""Fixtures for end-to-end tests: one real agent (with real Docker, real proxy ports)
and one real sshd per test module, and a developer who pushes over it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import STAND_IN_IMAGE, docker_problem, ssh_problem
from tests.e2e.harness import (
    AgentProcess, GitUser, SshServer, copy_package, free_port, world_readable_tempdir,
)

APPS = Path(__file__).resolve().parents[1] / "apps"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DOMAIN = "berth.test"
# berth.toml's [addons] for agents whose apps get add-ons: the stand-in images.
ADDONS = """
[addons]
postgres_image = "berth-stand-in/postgres:{version}"
redis_image = "berth-stand-in/redis:{version}"
postgres_version = "15"
"""


def agent_config(root: Path, *, http_port: int, https_port: int, command: str,
                 acme: str = "enabled = false", firewall: str = "enabled = false",
                 deploy: str = "", extra: str = "") -> str:
    ca = f'ca_bundle = "{HOST_CA_BUNDLE}"' if HOST_CA_BUNDLE.exists() else ""
    return f"""
[paths]
data_dir = "{root / 'data'}"
run_dir = "{root / 'run'}"
log_dir = "{root / 'log'}"

[ssh]
user = "berth"
authorized_keys = "{root / 'ssh' / 'authorized_keys'}"
command = {command!r}

[proxy]
listen = "127.0.0.1"
http_port = {http_port}
https_port = {https_port}

[deploy]
domain = "{DOMAIN}"
health_timeout = 60
health_interval = 0.25
drain_timeout = 10
stop_timeout = 3
settle_time = 1.0
{deploy}

[build]
python_image = "{STAND_IN_IMAGE}"
node_image = "{STAND_IN_IMAGE}"
static_image = "{STAND_IN_IMAGE}"
min_free_disk_mb = 512
{ca}

[acme]
{acme}

[firewall]
{firewall}
boot_ruleset = "{root / 'firewall.nft'}"
{extra}
"""


def make_agent(root: Path, *, http_port: int = 0, **sections: str) -> AgentProcess:
    lib = copy_package(root)
    http_port, https_port = http_port or free_port(), free_port()
    config_path = root / "berth.toml"
    python = sys.executable
    command = (f"env BERTH_CONFIG={shlex.quote(str(config_path))} "
               f"PYTHONPATH={shlex.quote(str(lib))} {shlex.quote(python)} -m agent")
    config_path.write_text(agent_config(root, http_port=http_port, https_port=https_port,
                                        command=command, **sections))
    config_path.chmod(0o644)
    env = {**os.environ, "BERTH_CONFIG": str(config_path), "PYTHONPATH": str(lib)}
    return AgentProcess(root, config_path, http_port, https_port, env)


@pytest.fixture(scope="module")
def e2e_root() -> Iterator[Path]:
    if docker_problem() or ssh_problem():
        pytest.skip(f"needs docker and ssh: {docker_problem() or ssh_problem()}")
    if not os.access(sys.executable, os.X_OK) or sys.executable.startswith("/root/"):
        pytest.skip("the test interpreter must be runnable by the berth user (use tests/run)")
    root = world_readable_tempdir("berth-e2e-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_stack(root: Path, **options: Any) -> Iterator[tuple[AgentProcess, GitUser]]:
    """A started agent (`make_agent` options), an sshd that logs its berth user in, and a
    developer whose key the agent knows; everything stopped and removed afterwards."""
    agent = make_agent(root, **options)
    agent.start()
    sshd = SshServer(root, root / "ssh" / "authorized_keys")
    try:
        sshd.start()
        user_root = root / "developer"
        user_root.mkdir(exist_ok=True)
        user = GitUser(user_root, sshd.port)
        agent.ok("keys:add", "dev", stdin=user.public_key)
        yield agent, user
    finally:
        sshd.stop()
        agent.stop()
        remove_leftovers()


def remove_leftovers(prefix: str = "e2e-") -> None:
    """Containers (add-ons' too), images and networks of the apps the tests made: those
    whose names start with `prefix`."""
    import docker

    client = docker.from_env()
    try:
        for label in ("berth.managed", "berth.addon.managed"):
            for container in client.containers.list(all=True, filters={"label": label}):
                owner = container.labels.get("berth.app") or container.labels.get(
                    "berth.addon.app", "")
                if owner.startswith(prefix):
                    container.remove(force=True)
        for image in client.images.list(name=f"berth/{prefix}*"):
            for tag in image.tags:
                client.images.remove(tag, force=True)
        for network in client.networks.list(names=[f"berth-{prefix}"]):
            if network.name.startswith(f"berth-{prefix}"):
                network.remove()
    finally:
        client.close()


@pytest.fixture(scope="module")
def stack(e2e_root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    with running_stack(e2e_root) as started:
        yield started


@pytest.fixture(scope="module")
def agent(stack: tuple[AgentProcess, GitUser]) -> AgentProcess:
    return stack[0]


@pytest.fixture(scope="module")
def developer(stack: tuple[AgentProcess, GitUser]) -> GitUser:
    return stack[1]
