"""Listening sockets and published ports, read from `ss` and `nft list ruleset` (pure).

A socket here is a TCP listener or a bound, unconnected UDP socket (`ss -H -l -n -t -u
-p`): the things the outside could open a conversation with. A published port is a DNAT
rule (Docker's `-p`, as iptables-nft lists it in `table ip nat`): with Docker's userland
proxy off nothing listens on it, yet it leads into a container. The firewall's status
judges each one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_PROCESS = re.compile(r'users:\(\("([^"]+)"')
_DNAT = re.compile(
    r"^\s*(?P<match>.*?)\b(?P<proto>tcp|udp) dport (?P<port>\d+)\b.*\bdnat (?:ip6? )?to (?P<to>\S+)",
    re.MULTILINE,
)
_DADDR = re.compile(r"\bip6? daddr (\S+)")
DOCKER_PROXY = "docker-proxy"


@dataclass(frozen=True, order=True)
class ListeningSocket:
    protocol: str  # tcp or udp
    port: int
    address: str  # as bound: 0.0.0.0, ::, 127.0.0.1, * ...
    process: str  # owning program's name, "" when unknown
    target: str = ""  # for a published (DNAT'd) port: where it leads, e.g. 172.17.0.2:5000

    @property
    def loopback(self) -> bool:
        try:
            address = ipaddress.ip_address(self.address)
        except ValueError:
            return False  # "*": every address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback

    @property
    def container(self) -> bool:
        """A port published into a container: the forward path decides, not the input."""
        return self.process == DOCKER_PROXY or bool(self.target)


def parse_ss(text: str) -> list[ListeningSocket]:
    sockets = set()
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        host, _, port = fields[4].rpartition(":")
        if not port.isdigit():
            continue
        host = host.split("%")[0].strip("[]")
        match = _PROCESS.search(fields[6]) if len(fields) > 6 else None
        process = match.group(1) if match else ""
        sockets.add(ListeningSocket(fields[0], int(port), host, process))
    return sorted(sockets)


def parse_dnat(ruleset: str) -> list[ListeningSocket]:
    """Ports DNAT'd into containers, from `nft list ruleset` (iptables-nft's nat rules)."""
    published = set()
    for match in _DNAT.finditer(ruleset):
        daddr = _DADDR.search(match.group("match"))
        address = daddr.group(1) if daddr else "*"
        proto, port, target = match.group("proto"), int(match.group("port")), match.group("to")
        published.add(ListeningSocket(proto, port, address, "dnat", target))
    return sorted(published)


def merge(
    listening: list[ListeningSocket], published: list[ListeningSocket]
) -> list[ListeningSocket]:
    """Listening sockets plus the published ports no socket stands for already."""
    taken = {(s.protocol, s.port) for s in listening}
    return sorted(listening + [p for p in published if (p.protocol, p.port) not in taken])
