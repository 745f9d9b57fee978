"""The firewall verbs through a real agent, applying rules only inside a network
namespace this test makes (never the machine's own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from agent.firewall.render import table_ssh_ports
from tests.e2e.conftest import make_agent
from tests.e2e.harness import world_readable_tempdir

pytestmark = [pytest.mark.netns, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def namespace():
    name = f"berth-e2e-fw-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


def tables(namespace: str) -> str:
    return subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "tables"],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def agent(namespace):
    root = world_readable_tempdir("berth-e2e-fw-")
    # An sshd configuration of the test's own, read with sshd -T, which the test moves.
    key = root / "sshd_hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sshd_port(root, 22)
    os.makedirs("/run/sshd", exist_ok=True)  # sshd -T insists on its privsep directory
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    process = make_agent(root, firewall=f'enabled = true\nnetns = "{namespace}"\n'
                                         'allow = ["8443/tcp"]\nsshd_check_interval = 1\n'
                                         f'sshd_command = ["{sshd}", "-T", "-f", '
                                         f'"{root / "sshd_config"}"]')
    process.start()
    yield process
    process.stop()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def sshd_port(root, port: int) -> None:
    (root / "sshd_config").write_text(f"Port {port}\nHostKey {root / 'sshd_hostkey'}\n")


def test_agent_applies_at_start_and_verbs_drive_it(agent, namespace):
    assert "table inet berth" in tables(namespace)  # applied when the agent started
    boot = agent.root / "firewall.nft"  # [firewall] boot_ruleset, saved at that apply
    assert "table inet berth {" in boot.read_text() and "8443" in boot.read_text()
    subprocess.run(["ip", "netns", "exec", namespace, "nft", "-c", "-f", str(boot)], check=True)

    dry = agent.ok("firewall:apply", "--dry-run")
    assert "table inet berth" in dry and "8443" in dry
    again = agent.ok("firewall:apply")
    assert "unchanged" in again.lower()
    status = agent.ok("firewall")
    assert "8443" in status

    assert "berth" in agent.ok("firewall:disable").lower()
    assert "table inet berth" not in tables(namespace)
    assert not boot.exists()  # nothing loaded at the next boot either

    agent.ok("firewall:apply", "--confirm-within", "5")
    assert "table inet berth" in tables(namespace)
    deadline = time.monotonic() + 30
    while "table inet berth" in tables(namespace) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "table inet berth" not in tables(namespace), "the unconfirmed change was not reverted"
    assert not boot.exists()  # never saved: it was not confirmed

    agent.ok("firewall:apply", "--confirm-within", "30")
    agent.ok("firewall:confirm")
    time.sleep(1)
    assert "table inet berth" in tables(namespace)
    assert "8443" in boot.read_text()  # saved once confirmed
    nothing = agent.cli("firewall:confirm")
    assert nothing.returncode == 1 and nothing.stderr.count("\n") == 1

    too_short = agent.cli("firewall:apply", "--confirm-within", "1")
    assert too_short.returncode == 1 and "5 to 3600" in too_short.stderr

    # sshd moved to another port: the agent lets it in by itself, for now and for the boot.
    sshd_port(agent.root, 2222)
    deadline = time.monotonic() + 30
    while "2222" not in boot.read_text():
        assert time.monotonic() < deadline, "the agent did not follow sshd to port 2222"
        time.sleep(0.2)
    listing = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "inet",
                              "berth"], capture_output=True, text=True, check=True).stdout
    assert {22, 2222} <= set(table_ssh_ports(listing))  # 22 stays: only an apply drops it

    # Turned off in berth.toml: the agent's next start removes the saved ruleset, so a
    # reboot loads no stale table.
    agent.stop()
    agent.config_path.write_text(agent.config_path.read_text().replace(
        "enabled = true\nnetns", "enabled = false\nnetns"))
    agent.start()
    assert not boot.exists()
