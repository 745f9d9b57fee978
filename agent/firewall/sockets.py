"""Listening sockets, read from `ss -H -l -n -t -u -p` output (pure parsing).

A socket here is a TCP listener or a bound, unconnected UDP socket: the things the
outside could open a conversation with. The firewall's status judges each one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_PROCESS = re.compile(r'users:\(\("([^"]+)"')
DOCKER_PROXY = "docker-proxy"


@dataclass(frozen=True, order=True)
class ListeningSocket:
    protocol: str  # tcp or udp
    port: int
    address: str  # as bound: 0.0.0.0, ::, 127.0.0.1, * ...
    process: str  # owning program's name, "" when unknown

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
        """Docker's userland proxy for a published port: the forward path decides."""
        return self.process == DOCKER_PROXY


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
