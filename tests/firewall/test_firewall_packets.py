"""Real packets through Berth's ruleset, in namespaces made by the lab (see lab.py).

Each test starts from a server namespace without Berth's table; the Docker-shaped rules,
the decoy table and the listeners stay for the whole module.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.firewall import FirewallService, FirewallSettings
from tests.firewall.lab import Lab

pytestmark = pytest.mark.netns

# The change is made over SSH to port 2222: that port must stay open though no sshd -T
# nor configuration names it.
SSH_CONNECTION = "10.77.0.2 50022 10.77.0.1 2222"

HOST_PORTS = (22, 80, 443, 2222, 5432, 8080)
V4, V6 = "10.77.0.1", "[fd77::1]"


def apply(lab: Lab, **settings: object) -> None:
    service = FirewallService(
        FirewallSettings(netns=lab.server, sshd_command=lab.sshd_command(), **settings)  # type: ignore[arg-type]
    )
    result = asyncio.run(service.apply(ssh_connection=SSH_CONNECTION, confirm_within=None))
    assert result.changed, result.message


def from_client(lab: Lab, host: str, *ports: int) -> dict[int, str]:
    got = lab.connect(lab.client, *(f"{host}:{port}" for port in ports))
    return {int(address.rpartition(":")[2]): answer for address, answer in got.items()}


@pytest.fixture
def routed_lab(clean_lab: Lab) -> Lab:
    """The client also routes straight to the container network (a neighbour on the same
    L2 can do that to any Docker host)."""
    for args in (("172.31.0.0/24", "via", "10.77.0.1"), ("fd78::/64", "via", "fd77::1")):
        family = "-6" if ":" in args[0] else "-4"
        clean_lab.ip("-n", clean_lab.client, family, "route", "replace", *args)
    return clean_lab


def test_without_berth_docker_publishes_to_the_world(routed_lab: Lab) -> None:
    # The hole this issue closes, shown here so the tests below can fail.
    lab = routed_lab
    for host in (V4, V6):
        got = from_client(lab, host, *HOST_PORTS, 8000)
        assert got == {p: f"server:{p}" for p in HOST_PORTS} | {8000: "container:80"}
    direct = lab.connect(lab.client, "172.31.0.2:80", "[fd78::2]:80")
    assert set(direct.values()) == {"container:80"}


def test_only_ssh_and_web_reach_the_host(routed_lab: Lab) -> None:
    lab = routed_lab
    apply(lab)
    for host in (V4, V6):
        got = from_client(lab, host, *HOST_PORTS, 8000)
        assert got == {
            22: "server:22",
            80: "server:80",
            443: "server:443",
            2222: "server:2222",  # the SSH connection's port
            5432: "timeout",
            8080: "timeout",
            8000: "timeout",  # the published container port
        }, host
    # Straight to the container's address: dropped too.
    direct = lab.connect(lab.client, "172.31.0.2:80", "[fd78::2]:80")
    assert set(direct.values()) == {"timeout"}


def test_the_host_and_the_containers_keep_their_paths(clean_lab: Lab) -> None:
    lab = clean_lab
    apply(lab)
    # The host reaches the container on its published port, over loopback and its own
    # addresses (what the proxy does), and its own services.
    local = lab.connect(lab.server, "127.0.0.1:8000", f"{V4}:8000", f"{V6}:8000", "127.0.0.1:5432")
    assert local == {
        "127.0.0.1:8000": "container:80",
        f"{V4}:8000": "container:80",
        f"{V6}:8000": "container:80",
        "127.0.0.1:5432": "server:5432",
    }
    # The container reaches the outside (masqueraded), over IPv4 and IPv6.
    outbound = lab.connect(lab.container, "10.77.0.2:9000", "[fd77::2]:9000")
    assert set(outbound.values()) == {"client:9000"}
    # The host reaches the outside and gets its answers back.
    assert set(lab.connect(lab.server, "10.77.0.2:9000", "[fd77::2]:9000").values()) == {
        "client:9000"
    }


def test_a_published_exception_opens_that_container_port_only(routed_lab: Lab) -> None:
    lab = routed_lab
    apply(lab, publish=("8000/tcp",))
    for host in (V4, V6):
        assert from_client(lab, host, 8000, 8080) == {8000: "container:80", 8080: "timeout"}
    # Publishing the host port does not open the container's own address.
    direct = lab.connect(lab.client, "172.31.0.2:80", "[fd78::2]:80")
    assert set(direct.values()) == {"timeout"}


def test_extra_ports_and_sources(clean_lab: Lab) -> None:
    lab = clean_lab
    apply(lab, allow=("8080/tcp", "5432/tcp from 10.77.0.0/24"))
    assert from_client(lab, V4, 8080, 5432) == {8080: "server:8080", 5432: "server:5432"}
    assert from_client(lab, V6, 8080, 5432) == {8080: "server:8080", 5432: "timeout"}


def test_ping_answers_and_is_rate_limited(clean_lab: Lab) -> None:
    lab = clean_lab
    apply(lab, icmp_echo_rate=5)
    assert lab.ping(lab.client, "10.77.0.1") == 1
    assert lab.ping(lab.client, "fd77::1") == 1
    # 100 requests at once: the burst (2 x rate) gets through, the rest is dropped.
    for host in ("10.77.0.1", "fd77::1"):
        answered = lab.ping(lab.client, host, count=100)
        assert 5 <= answered <= 30, (host, answered)


def test_container_interfaces_match_by_prefix(routed_lab: Lab) -> None:
    # Docker's user networks are br-<id>: a wildcard in the interface set must match.
    lab = routed_lab
    apply(lab, container_interfaces=("br-*", "dock*"))
    assert from_client(lab, V4, 8000) == {8000: "timeout"}
    direct = lab.connect(lab.client, "172.31.0.2:80", "[fd78::2]:80")
    assert set(direct.values()) == {"timeout"}
    outbound = lab.connect(lab.container, "10.77.0.2:9000", "[fd77::2]:9000")
    assert set(outbound.values()) == {"client:9000"}
