"""Parsing of the firewall's user-written values (pure): port rules, interfaces, namespaces.

A port rule is how berth.toml names traffic to let in (`allow`) or container ports to
publish (`publish`):

    "8443/tcp"                      one port, one protocol
    "60000-61000/udp"               an inclusive range
    "5432/tcp from 10.0.0.0/8"      only from these sources (comma-separated CIDRs or
    "5432/tcp from 10.0.0.0/8,2001:db8::/32"   addresses, IPv4 and IPv6 may mix)

The protocol is required (tcp or udp): guessing would open the wrong one. Everything here
raises `InvalidFirewallSetting` with the setting's key, so a typo is one clear line and
nothing is applied.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from agent.firewall.errors import InvalidFirewallSetting

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOLS = ("tcp", "udp")
_RULE = re.compile(r"^\s*(?P<ports>\S+?)(?:/(?P<proto>\S+))?(?:\s+from\s+(?P<sources>\S.*?))?\s*$")
# Linux interface names: at most 15 bytes; a trailing '*' matches every name with that
# prefix (as nft's iifname does). Quotes and spaces can never appear, so a name is safe to
# write into the ruleset.
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}\*?$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, order=True)
class PortRule:
    """Traffic to `first`..`last` over `protocol`, from `sources` (empty: from anywhere)."""

    protocol: str
    first: int
    last: int
    sources: tuple[Network, ...] = ()

    @property
    def ports(self) -> str:
        """The port or range as written in nft and in messages (`8443`, `6000-6010`)."""
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def covers(self, protocol: str, port: int) -> bool:
        return self.protocol == protocol and self.first <= port <= self.last

    def describe(self) -> str:
        text = f"{self.ports}/{self.protocol}"
        if self.sources:
            text += " from " + ",".join(str(s) for s in self.sources)
        return text


def parse_port_rule(text: str, key: str) -> PortRule:
    """Parse one `allow`/`publish` entry; `key` (e.g. `firewall.allow[2]`) names it in errors."""
    match = _RULE.match(text)
    if match is None or not text.strip():
        raise InvalidFirewallSetting(key, text, "expected PORT/PROTO, e.g. '8443/tcp'")
    protocol = match.group("proto")
    if protocol is None:
        raise InvalidFirewallSetting(
            key, text, f"missing protocol: write {match.group('ports')}/tcp or /udp"
        )
    if protocol not in PROTOCOLS:
        raise InvalidFirewallSetting(key, text, f"protocol must be tcp or udp, not {protocol!r}")
    first, last = _parse_ports(match.group("ports"), text, key)
    sources = match.group("sources")
    networks = _parse_sources(sources, text, key) if sources is not None else ()
    return PortRule(protocol, first, last, networks)


def parse_port_rules(texts: tuple[str, ...], key: str) -> tuple[PortRule, ...]:
    return tuple(parse_port_rule(t, f"{key}[{i}]") for i, t in enumerate(texts))


def check_port(port: int, key: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidFirewallSetting(key, port, "port must be 1-65535")
    return port


def check_interface(name: str, key: str) -> str:
    if not _INTERFACE.match(name):
        raise InvalidFirewallSetting(
            key, name, "interface name: up to 15 of A-Z a-z 0-9 _ . : @ -, optional trailing *"
        )
    return name


def check_netns(name: str, key: str) -> str:
    if name and not _NETNS.match(name):
        raise InvalidFirewallSetting(key, name, "namespace name: A-Z a-z 0-9 _ . - only")
    return name


def _parse_ports(text: str, rule: str, key: str) -> tuple[int, int]:
    parts = text.split("-")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise InvalidFirewallSetting(key, rule, f"{text!r} is not a port or a range like 6000-6010")
    numbers = [int(p) for p in parts]
    for number in numbers:
        if not 1 <= number <= 65535:
            raise InvalidFirewallSetting(key, rule, f"port {number} is not 1-65535")
    first, last = numbers[0], numbers[-1]
    if first > last:
        raise InvalidFirewallSetting(key, rule, f"range {text} runs backwards")
    return first, last


def _parse_sources(text: str, rule: str, key: str) -> tuple[Network, ...]:
    networks: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            problem = f"{item!r} is not an address or CIDR"
            if "host bits set" in str(exc):
                loose = ipaddress.ip_network(item, strict=False)
                problem = f"{item!r} has host bits set (did you mean {loose}?)"
            raise InvalidFirewallSetting(key, rule, problem) from exc
    return tuple(networks)
