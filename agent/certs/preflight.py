"""Preflight before an order: does the name lead to this host?

A typo in a domain, or a DNS record still pointing at the old server, would fail
validation and burn the CA's failed-validation limit (5 per name per hour at Let's
Encrypt). So before ordering, the name is resolved and every address it has must be one
of this host's: an address a local socket can bind, or one listed in
`acme.public_addresses` (a NAT's public IP that no local interface carries).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence

from agent.certs.errors import PreflightFailed
from agent.certs.interfaces import Resolver


async def system_resolver(name: str) -> Sequence[str]:
    """The system's view of `name` (A and AAAA); [] when it does not resolve."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


def is_local_address(address: str) -> bool:
    """Whether a socket on this host can bind `address` (it belongs to an interface)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def foreign_addresses(addresses: Iterable[str], public: Iterable[str]) -> list[str]:
    """The addresses that are not this host's."""
    ours = set(public)
    return [a for a in addresses if a not in ours and not is_local_address(a)]


async def check(domain: str, resolver: Resolver, public: Sequence[str], timeout: float) -> None:
    """Raise `PreflightFailed` unless `domain` resolves only to this host."""
    try:
        addresses = list(await asyncio.wait_for(resolver(domain), timeout))
    except TimeoutError:
        raise PreflightFailed(domain, f"DNS lookup took over {timeout:g} s") from None
    if not addresses:
        raise PreflightFailed(domain, "the name does not resolve; add an A/AAAA record "
                                      "pointing at this server")
    foreign = foreign_addresses(addresses, public)
    if foreign:
        raise PreflightFailed(
            domain,
            f"the name resolves to {', '.join(foreign)}, not to this server "
            "(fix the DNS record, or list the address in acme.public_addresses if this "
            "server is behind NAT)",
        )
