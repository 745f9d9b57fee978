"""Which SSH ports stay open: sshd -T, the current SSH connection, configuration."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.firewall.errors import InvalidSshConnection
from agent.firewall.nft import NftRunner, read_sshd_ports
from agent.firewall.sshd import combine, parse_sshd_ports, ssh_connection_port

SSHD_T = """\
port 22
port 2222
addressfamily any
listenaddress [::]:22
listenaddress 0.0.0.0:22
permitrootlogin without-password
"""


def test_ports_are_read_from_sshd_t_output() -> None:
    assert parse_sshd_ports(SSHD_T) == (22, 2222)
    assert parse_sshd_ports("Port 2200\n") == (2200,)
    assert parse_sshd_ports("passwordauthentication no\nport 0\n") == ()


def test_the_server_port_of_ssh_connection() -> None:
    assert ssh_connection_port("203.0.113.9 51234 198.51.100.2 2222") == 2222
    assert ssh_connection_port("2001:db8::9 51234 2001:db8::1 22") == 22
    assert ssh_connection_port("fe80::9%eth0 51234 fe80::1%eth0 22") == 22


@pytest.mark.parametrize(
    "value",
    [
        " ",
        "203.0.113.9 51234 198.51.100.2",
        "a b c d",
        "1.2.3.4 1 5.6.7.8 70000",
        "1.2.3.4 1 5.6.7.8 x",
    ],
)
def test_an_unreadable_ssh_connection_refuses(value: str) -> None:
    with pytest.raises(InvalidSshConnection, match="refusing to apply"):
        combine(configured=(), sshd_ports=(22,), sshd_problem="", ssh_connection=value)


def test_every_source_counts_and_says_where_it_came_from() -> None:
    ports = combine(
        configured=(2200,),
        sshd_ports=(22,),
        sshd_problem="",
        ssh_connection="203.0.113.9 51234 198.51.100.2 2222",
    )
    assert ports.ports == (22, 2200, 2222)
    assert (2222, "current SSH connection") in ports.sources
    assert (22, "sshd -T") in ports.sources
    assert ports.notes == ()


def test_unreadable_sshd_keeps_22_open_and_says_why() -> None:
    ports = combine(
        configured=(), sshd_ports=None, sshd_problem="sshd not found", ssh_connection=None
    )
    assert ports.ports == (22,)
    assert ports.notes == ("could not read sshd's ports (sshd not found); keeping 22 open",)


def test_unreadable_sshd_keeps_22_and_the_last_applied_ports() -> None:
    ports = combine(configured=(), sshd_ports=None, sshd_problem="exit 255",
                    ssh_connection=None, last_known=(2222,))
    assert ports.ports == (22, 2222)
    assert (2222, "last applied") in ports.sources
    assert ports.notes == ("could not read sshd's ports (exit 255); keeping 22, 2222 open",)
    # Read: sshd's own ports win, an old port is not kept for ever.
    read = combine(configured=(), sshd_ports=(2200,), sshd_problem="", ssh_connection=None,
                   last_known=(2222,))
    assert read.ports == (2200,)


def test_a_missing_sshd_program_is_a_note_not_a_crash() -> None:
    runner = NftRunner(timeout=5)
    ports, problem = asyncio.run(read_sshd_ports(("/nonexistent/sshd", "-T"), runner))
    assert ports is None and "not found" in problem


@pytest.mark.skipif(
    shutil.which("sshd") is None and not os.path.exists("/usr/sbin/sshd"),
    reason="openssh-server not installed",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="sshd -T needs root")
def test_real_sshd_reports_its_configured_ports(tmp_path: Path) -> None:
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(f"Port 2201\nPort 2202\nHostKey {key}\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd -T insists on its privsep directory
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    runner = NftRunner(timeout=10)
    assert asyncio.run(read_sshd_ports((sshd, "-T", "-f", str(config)), runner)) == (
        (2201, 2202),
        "",
    )
    config.write_text("Port 2201\nNoSuchOption yes\n")
    ports, problem = asyncio.run(read_sshd_ports((sshd, "-T", "-f", str(config)), runner))
    assert ports is None and "NoSuchOption" in problem
