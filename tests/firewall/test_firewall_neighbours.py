"""Other firewall managers in the ruleset, listening sockets and what the policy says of them."""

from __future__ import annotations

import pytest

from agent.firewall.coexist import BESIDE, INFO, REFUSE, detect, refuse_if_unsafe
from agent.firewall.errors import FirewallConflict
from agent.firewall.policy import CLOSED, LOCAL, OPEN, RESTRICTED, Policy
from agent.firewall.settings import FirewallSettings
from agent.firewall.sockets import ListeningSocket, merge, parse_dnat, parse_ss

UFW_RULESET = """\
table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy drop;
		counter jump ufw-before-input
	}

	chain ufw-before-input {
	}
}
table ip6 filter {
	chain ufw6-before-input {
	}
}
"""

FIREWALLD_NFT = """\
table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
	}
}
"""

FIREWALLD_IPTABLES = """\
table ip filter {
	chain INPUT_direct {
	}

	chain IN_public {
	}
}
"""

DOCKER_RULESET = """\
table ip filter {
	chain DOCKER-USER {
		counter return
	}
}
"""


def test_ufw_is_found_and_berth_works_beside_it() -> None:
    found = detect(UFW_RULESET)
    assert [(n.name, n.decision) for n in found] == [("ufw", BESIDE)]
    refuse_if_unsafe(found)  # no refusal
    assert "both ufw and Berth allow it" in found[0].explanation


@pytest.mark.parametrize("ruleset", [FIREWALLD_NFT, FIREWALLD_IPTABLES])
def test_firewalld_is_found_and_refused(ruleset: str) -> None:
    found = detect(ruleset)
    assert [(n.name, n.decision) for n in found] == [("firewalld", REFUSE)]
    with pytest.raises(FirewallConflict) as caught:
        refuse_if_unsafe(found)
    assert str(caught.value).startswith("firewalld is active: ")
    assert "systemctl disable --now firewalld" in str(caught.value)
    assert caught.value.status == 409


def test_docker_is_reported_only_for_information() -> None:
    assert [(n.name, n.decision) for n in detect(DOCKER_RULESET)] == [("docker", INFO)]
    assert detect("") == []
    assert detect("table inet berth {\n\tchain input {\n\t}\n}\n") == []


SS = """\
tcp   LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=10,fd=3))
tcp   LISTEN 0      244        127.0.0.1:6379       0.0.0.0:*    users:(("redis-server",pid=11,fd=6))
tcp   LISTEN 0      244                *:5432             *:*    users:(("postgres",pid=12,fd=5))
tcp   LISTEN 0      4096            [::]:8080          [::]:*    users:(("docker-proxy",pid=13,fd=4))
tcp   LISTEN 0      4096         0.0.0.0:25565      0.0.0.0:*    users:(("docker-proxy",pid=14,fd=4))
tcp   LISTEN 0      511            [::1]:3000          [::]:*
udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=15,fd=13))
udp   UNCONN 0      0       [fe80::1]%eth0:546         [::]:*
udp   UNCONN 0      0            0.0.0.0:51820      0.0.0.0:*
tcp   LISTEN 0      10   [::ffff:127.0.0.1]:7000       *:*
"""


def test_ss_lines_become_sockets() -> None:
    sockets = parse_ss(SS)
    assert ListeningSocket("tcp", 22, "0.0.0.0", "sshd") in sockets
    assert ListeningSocket("udp", 53, "127.0.0.53", "systemd-resolve") in sockets
    assert ListeningSocket("udp", 546, "fe80::1", "") in sockets
    loopback = {(s.protocol, s.port) for s in sockets if s.loopback}
    assert loopback == {("tcp", 6379), ("tcp", 3000), ("udp", 53), ("tcp", 7000)}
    assert {s.port for s in sockets if s.container} == {8080, 25565}
    assert parse_ss("garbage\n\nNetid State\n") == []


def test_each_socket_is_judged_by_the_policy() -> None:
    settings = FirewallSettings(
        allow=("51820/udp", "5432/tcp from 10.0.0.0/8"), publish=("25565/tcp",)
    )
    policy = Policy.build(settings, (22,))
    verdicts = {
        (s.protocol, s.port): policy.judge(
            s.protocol, s.port, loopback=s.loopback, container=s.container
        )
        for s in parse_ss(SS)
    }
    assert verdicts[("tcp", 22)].state == OPEN and verdicts[("tcp", 22)].reason == "ssh"
    assert verdicts[("tcp", 6379)].state == LOCAL
    assert verdicts[("tcp", 5432)].state == RESTRICTED
    assert "10.0.0.0/8" in verdicts[("tcp", 5432)].reason
    assert verdicts[("tcp", 8080)].state == CLOSED
    assert "not in firewall.publish" in verdicts[("tcp", 8080)].reason
    assert verdicts[("tcp", 25565)].state == OPEN
    assert verdicts[("udp", 51820)].state == OPEN
    assert verdicts[("udp", 546)].state == CLOSED


def test_allow_does_not_open_a_published_container_port() -> None:
    # A container port is DNAT'd into the forward path: only `publish` opens it.
    policy = Policy.build(FirewallSettings(allow=("8080/tcp",)), (22,))
    assert policy.judge("tcp", 8080, loopback=False, container=True).state == CLOSED
    assert policy.judge("tcp", 8080, loopback=False, container=False).state == OPEN


def test_trusted_interfaces_make_the_rest_restricted() -> None:
    policy = Policy.build(FirewallSettings(trusted_interfaces=("wg0",)), (22,))
    verdict = policy.judge("tcp", 5432, loopback=False, container=False)
    assert verdict.state == RESTRICTED and "wg0" in verdict.reason
    assert [a.kind for a in policy.allowances()] == ["ssh", "web", "web", "trusted"]


NAT = """\
table ip nat {
	chain DOCKER {
		iifname "docker0" counter return
		iifname != "docker0" ip daddr 127.0.0.1 tcp dport 8001 counter dnat to 172.17.0.2:5000
		iifname != "docker0" udp dport 8002 counter dnat to 172.17.0.2:53
		iifname != "docker0" tcp dport 8080 counter dnat to 172.17.0.3:80
	}
}
"""


def test_published_ports_are_read_from_docker_nat_rules() -> None:
    published = parse_dnat(NAT)
    assert published == [
        ListeningSocket("tcp", 8001, "127.0.0.1", "dnat", "172.17.0.2:5000"),
        ListeningSocket("tcp", 8080, "*", "dnat", "172.17.0.3:80"),
        ListeningSocket("udp", 8002, "*", "dnat", "172.17.0.2:53"),
    ]
    assert all(p.container for p in published)
    assert published[0].loopback  # Berth's own way: published on 127.0.0.1 only
    # A docker-proxy socket already stands for 8080; 8001 and 8002 are added.
    merged = merge(parse_ss(SS), published)
    assert [s.process for s in merged if s.port == 8080] == ["docker-proxy"]
    assert {(s.protocol, s.port) for s in merged} >= {("tcp", 8001), ("udp", 8002)}
