"""Rendering the policy into the nft transaction (pure), and the golden dry-run text."""

from __future__ import annotations

import os
from pathlib import Path

from agent.firewall.coexist import DOCKER, UFW
from agent.firewall.policy import Policy
from agent.firewall.render import (
    build_plan,
    remove_transaction,
    render_table,
    replace_transaction,
    table_digest,
    table_ssh_ports,
)
from agent.firewall.settings import FirewallSettings
from agent.firewall.sshd import SshPorts

GOLDEN = Path(__file__).parent / "golden" / "dry-run.nft"

GOLDEN_SETTINGS = FirewallSettings(
    enabled=True,
    allow=("8443/tcp", "60000-61000/udp", "5432/tcp from 10.0.0.0/8,2001:db8::/32"),
    publish=("25565/tcp", "9000/udp from 198.51.100.0/24"),
    trusted_interfaces=("wg0",),
)
GOLDEN_SSH = SshPorts(
    ports=(22, 2222),
    sources=((22, "sshd -T"), (2222, "current SSH connection")),
)


def plan_text(settings: FirewallSettings = GOLDEN_SETTINGS) -> str:
    return build_plan(settings, GOLDEN_SSH, [UFW, DOCKER]).text


def test_dry_run_text_matches_the_golden_file() -> None:
    text = plan_text()
    if os.environ.get("BERTH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "run with BERTH_UPDATE_GOLDEN=1 to accept a change"


def test_the_transaction_replaces_only_berths_table() -> None:
    lines = [line for line in plan_text().splitlines() if line and not line.startswith("#")]
    assert lines[:3] == ["table inet berth", "delete table inet berth", "table inet berth {"]
    tables = [line for line in lines if line.startswith(("table ", "delete "))]
    assert all(line.endswith(("table inet berth", "table inet berth {")) for line in tables)
    for word in ("flush", "ruleset", "iptables"):
        assert word not in " ".join(lines)


def test_input_defaults_to_drop_and_lets_in_what_is_configured() -> None:
    text = plan_text()
    assert "type filter hook input priority filter - 10; policy drop;" in text
    assert 'tcp dport { 22, 2222 } accept comment "ssh"' in text
    assert 'tcp dport { 80, 443 } accept comment "web"' in text
    assert 'tcp dport 8443 accept comment "allow 8443/tcp"' in text
    assert 'udp dport 60000-61000 accept comment "allow 60000-61000/udp"' in text
    # Sources of both families become one rule per family.
    assert "ip saddr 10.0.0.0/8 tcp dport 5432 accept" in text
    assert "ip6 saddr 2001:db8::/32 tcp dport 5432 accept" in text
    assert "ct state invalid drop" in text
    flood = "icmp type echo-request limit rate over 10/second burst 20 packets drop"
    assert text.index(flood) < text.index("ct state established,related accept")
    assert "packet-too-big" in text and "nd-neighbor-solicit" in text


def test_forward_closes_containers_except_published_ports() -> None:
    text = plan_text()
    assert "type filter hook forward priority filter - 10; policy accept;" in text
    assert 'oifname { "docker0", "br-*" } jump into_containers' in text
    into = text[text.index("chain into_containers") :]
    order = [
        "ct state established,related accept",
        'iifname { "docker0", "br-*" } accept',
        'iifname "wg0" accept',
        "meta l4proto tcp ct original proto-dst 25565 accept",
        "ip saddr 198.51.100.0/24 meta l4proto udp ct original proto-dst 9000 accept",
        "counter drop",
    ]
    positions = [into.index(fragment) for fragment in order]
    assert positions == sorted(positions)
    assert "hook output" not in text  # the host's own traffic is never filtered


def test_the_digest_follows_the_policy_and_nothing_else() -> None:
    first = build_plan(GOLDEN_SETTINGS, GOLDEN_SSH, [UFW])
    same = build_plan(GOLDEN_SETTINGS, GOLDEN_SSH, [])
    other = build_plan(FirewallSettings(allow=("8443/tcp",)), GOLDEN_SSH, [])
    assert first.digest == same.digest  # neighbours only change the comments
    assert first.digest != other.digest
    assert table_digest(first.text) == first.digest
    assert table_digest("table inet berth {\n}\n") is None
    assert table_digest(None) is None


def test_an_empty_configuration_still_keeps_ssh_and_web() -> None:
    policy = Policy.build(FirewallSettings(), (22,))
    table = render_table(policy)
    assert 'tcp dport 22 accept comment "ssh"' in table
    assert "allow" not in table and "publish" not in table
    assert "ct original proto-dst" not in table


def test_no_container_interfaces_means_no_forward_filtering() -> None:
    table = render_table(Policy.build(FirewallSettings(container_interfaces=()), (22,)))
    assert "jump into_containers" not in table


def test_restore_and_remove_transactions() -> None:
    listing = "table inet berth {\n}\n"
    assert replace_transaction(listing).endswith("delete table inet berth\n" + listing)
    assert replace_transaction(None).endswith("delete table inet berth\n")
    assert remove_transaction() == "table inet berth\ndelete table inet berth\n"


def test_the_ssh_ports_of_a_loaded_table_are_read_back() -> None:
    assert table_ssh_ports(plan_text()) == (22, 2222)
    single = render_table(Policy.build(FirewallSettings(), (2200,)))
    assert table_ssh_ports(single) == (2200,)
    assert table_ssh_ports(None) == ()
    assert table_ssh_ports("table inet berth {\n}\n") == ()


def test_ssh_ports_added_from_elsewhere_keep_their_source() -> None:
    more = GOLDEN_SSH.adding((22, 2200), "loaded table")
    assert more.ports == (22, 2200, 2222)
    assert more.sources[-1] == (2200, "loaded table")
    assert GOLDEN_SSH.adding((22,), "loaded table") is GOLDEN_SSH
