"""Which SSH ports must stay open, so applying the firewall never locks its user out.

Three sources, all always allowed: the `port` lines of the running sshd's effective
configuration (`sshd -T`), the server port of the SSH connection the change is made over
(the caller hands in its `SSH_CONNECTION`; nothing here reads the environment), and the
ports configured in `firewall.ssh_ports`. When `sshd -T` cannot be read, port 22 is kept
open as well as the SSH ports last let in (by the loaded table and the ruleset saved for
boot), and the plan says why: an sshd moved to another port and then unreadable must not
be shut out by the next apply, nor at the next boot.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from agent.firewall.errors import InvalidSshConnection

FALLBACK_PORT = 22


@dataclass(frozen=True)
class SshPorts:
    ports: tuple[int, ...]
    # Where each port came from, for the plan ("sshd -T", "SSH_CONNECTION", "config").
    sources: tuple[tuple[int, str], ...]
    notes: tuple[str, ...] = ()

    def adding(self, ports: tuple[int, ...], source: str) -> SshPorts:
        """These ports and `ports` (from `source`), for ports not already counted."""
        new = [p for p in ports if p not in self.ports]
        if not new:
            return self
        return SshPorts(
            ports=tuple(sorted({*self.ports, *new})),
            sources=self.sources + tuple((p, source) for p in new),
            notes=self.notes,
        )


def parse_sshd_ports(text: str) -> tuple[int, ...]:
    """The ports in `sshd -T` output (`port 22` lines; there may be several)."""
    ports = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() == "port" and value.strip().isdigit():
            port = int(value)
            if 1 <= port <= 65535:
                ports.append(port)
    return tuple(sorted(set(ports)))


def ssh_connection_port(value: str) -> int:
    """The server port of an `SSH_CONNECTION` value ("client_ip client_port server_ip port")."""
    fields = value.split()
    if len(fields) != 4 or not fields[1].isdigit() or not fields[3].isdigit():
        raise InvalidSshConnection(value)
    try:
        ipaddress.ip_address(fields[0].split("%")[0])
        ipaddress.ip_address(fields[2].split("%")[0])
    except ValueError as exc:
        raise InvalidSshConnection(value) from exc
    port = int(fields[3])
    if not 1 <= port <= 65535:
        raise InvalidSshConnection(value)
    return port


def combine(
    *,
    configured: tuple[int, ...],
    sshd_ports: tuple[int, ...] | None,
    sshd_problem: str,
    ssh_connection: str | None,
    last_known: tuple[int, ...] = (),
) -> SshPorts:
    """Every SSH port to keep open; `sshd_ports` None means `sshd -T` failed with `sshd_problem`,
    and then 22 and `last_known` (the SSH ports of the last table applied) stay open."""
    sources: list[tuple[int, str]] = [(p, "firewall.ssh_ports") for p in configured]
    notes: list[str] = []
    if sshd_ports is not None:
        sources += [(p, "sshd -T") for p in sshd_ports]
    else:
        sources.append((FALLBACK_PORT, "fallback"))
        sources += [(p, "last applied") for p in sorted(set(last_known))]
        kept = ", ".join(str(p) for p in sorted({FALLBACK_PORT, *last_known}))
        notes.append(f"could not read sshd's ports ({sshd_problem}); keeping {kept} open")
    if ssh_connection:
        sources.append((ssh_connection_port(ssh_connection), "current SSH connection"))
    ports = tuple(sorted({port for port, _ in sources}))
    return SshPorts(ports=ports, sources=tuple(sources), notes=tuple(notes))
