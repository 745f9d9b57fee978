"""Parsing and validation of the firewall's settings: refused before anything is applied."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.errors import BerthError, ConfigError
from agent.firewall.errors import InvalidFirewallSetting
from agent.firewall.rules import PortRule, parse_port_rule
from agent.firewall.settings import DEFAULT_BOOT_RULESET, FirewallSettings


def test_a_port_with_its_protocol() -> None:
    assert parse_port_rule("8443/tcp", "k") == PortRule("tcp", 8443, 8443)
    assert parse_port_rule(" 51820/udp ", "k") == PortRule("udp", 51820, 51820)


def test_a_range_and_sources_of_both_families() -> None:
    rule = parse_port_rule("6000-6010/udp from 10.0.0.0/8, 2001:db8::/32,192.0.2.7", "k")
    assert (rule.protocol, rule.first, rule.last) == ("udp", 6000, 6010)
    assert rule.sources == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert rule.describe() == "6000-6010/udp from 10.0.0.0/8,2001:db8::/32,192.0.2.7/32"
    assert rule.covers("udp", 6005) and not rule.covers("tcp", 6005)
    assert not rule.covers("udp", 6011)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0/tcp", "port 0 is not 1-65535"),
        ("65536/tcp", "port 65536 is not 1-65535"),
        ("70000/udp", "port 70000 is not 1-65535"),
        ("-1/tcp", "is not a port or a range"),
        ("http/tcp", "is not a port or a range"),
        ("10-5/tcp", "range 10-5 runs backwards"),
        ("1-2-3/tcp", "is not a port or a range"),
        ("8443/sctp", "protocol must be tcp or udp, not 'sctp'"),
        ("8443/TCP", "protocol must be tcp or udp"),
        ("8443", "missing protocol: write 8443/tcp or /udp"),
        ("", "expected PORT/PROTO"),
        ("5432/tcp from 10.0.0.0/33", "'10.0.0.0/33' is not an address or CIDR"),
        ("5432/tcp from 10.0.0.300", "'10.0.0.300' is not an address or CIDR"),
        ("5432/tcp from 10.0.0.0/8,", "'' is not an address or CIDR"),
        ("5432/tcp from 10.1.2.3/8", "has host bits set (did you mean 10.0.0.0/8?)"),
        ("5432/tcp from fe80::1/10", "did you mean fe80::/10?"),
    ],
)
def test_malformed_rules_are_one_clear_line(text: str, problem: str) -> None:
    with pytest.raises(InvalidFirewallSetting) as caught:
        parse_port_rule(text, "firewall.allow[3]")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config: firewall.allow[3]: {text!r}: ")
    assert problem in message
    assert isinstance(caught.value, BerthError)


def test_berth_toml_is_checked_at_load_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match=r"firewall\.publish\[1\]: '8080/tcpx'"):
        parse_config('[firewall]\npublish = ["25565/tcp", "8080/tcpx"]\n')
    with pytest.raises(ConfigError, match=r"firewall\.ssh_ports\[0\]: 0: port must be 1-65535"):
        parse_config("[firewall]\nssh_ports = [0]\n")


def test_a_good_section_loads() -> None:
    config = parse_config(
        "[firewall]\n"
        "enabled = true\n"
        'netns = "lab1"\n'
        'allow = ["8443/tcp", "5432/tcp from 10.0.0.0/8"]\n'
        'publish = ["25565/tcp"]\n'
        'trusted_interfaces = ["wg0"]\n'
    )
    settings = config.firewall
    assert settings.enabled and settings.netns == "lab1"
    assert settings.allow_rules()[1].sources == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.publish_rules() == (PortRule("tcp", 25565, 25565),)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"web_ports": (80, 99999)}, "firewall.web_ports[1]"),
        ({"trusted_interfaces": ('wg0" accept',)}, "firewall.trusted_interfaces[0]"),
        ({"trusted_interfaces": ("*",)}, "firewall.trusted_interfaces[0]"),
        ({"container_interfaces": ("a-very-long-interface",)}, "firewall.container_interfaces[0]"),
        ({"netns": "bad name"}, "firewall.netns"),
        ({"icmp_echo_rate": 0}, "firewall.icmp_echo_rate"),
        ({"command_timeout": 0.0}, "firewall.command_timeout"),
        ({"sshd_command": ()}, "firewall.sshd_command"),
        ({"boot_ruleset": Path("firewall.nft")}, "firewall.boot_ruleset"),
        ({"sshd_check_interval": 0.5}, "firewall.sshd_check_interval"),
    ],
)
def test_other_settings_are_checked(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidFirewallSetting, match=re.escape(f"config: {key}: ")):
        FirewallSettings(**kwargs)  # type: ignore[arg-type]


def test_interface_wildcards_are_prefixes() -> None:
    settings = FirewallSettings(
        container_interfaces=("docker0", "br-*"), trusted_interfaces=("wg*",)
    )
    assert settings.container_interfaces == ("docker0", "br-*")


def test_the_boot_ruleset_is_the_installers_for_the_host_and_none_for_a_namespace() -> None:
    assert FirewallSettings().boot_file() == DEFAULT_BOOT_RULESET == Path("/etc/berth/firewall.nft")
    assert FirewallSettings(netns="lab").boot_file() is None  # never the host's boot file
    chosen = parse_config('[firewall]\nnetns = "lab"\nboot_ruleset = "/srv/boot.nft"\n')
    assert chosen.firewall.boot_file() == Path("/srv/boot.nft")
