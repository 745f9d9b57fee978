"""What an instance listens on, read from the kernel's socket tables of its process.

An app bound to 127.0.0.1, or to another port than $PORT, never answers the health
check; without this the deploy waits for the whole deadline and says only "connection
refused". `/proc/PID/net/tcp` and `tcp6` list the listening sockets of the network
namespace PID lives in (the container's), so the agent (root, on the same host) can name
what the instance listens on. The parsing and the judgement are pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

_LISTEN = "0A"
# Docker's resolver on a user-defined network listens inside every container of it, on
# this address and a port of its own: the engine's socket, not the app's.
ENGINE_DNS = "127.0.0.11"


@dataclass(frozen=True, order=True)
class Listener:
    """One listening TCP socket."""

    address: str
    port: int

    @property
    def everywhere(self) -> bool:
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse(table: str) -> list[Listener]:
    """The listening sockets of a /proc/net/tcp or tcp6 table."""
    found = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        address, port = fields[1].split(":", 1)
        try:
            found.append(Listener(_address(address), int(port, 16)))
        except ValueError:
            continue
    return found


def _address(hex_address: str) -> str:
    """The kernel writes each 32-bit word of the address in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    if len(raw) not in (4, 16):
        raise ValueError(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def read(pid: int) -> list[Listener] | None:
    """The listening sockets in the network namespace of `pid`; None if unreadable.
    Blocking: call it in a worker thread."""
    found: list[Listener] = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", encoding="ascii", errors="replace") as table:
                found += parse(table.read())
        except FileNotFoundError:
            continue  # no IPv6 in that namespace
        except OSError:
            return None
    return found


def own(listeners: Iterable[Listener]) -> list[Listener]:
    """The instance's own listening sockets, sorted (the engine's resolver left out)."""
    return sorted({listener for listener in listeners if listener.address != ENGINE_DNS})


def describe(listeners: Iterable[Listener]) -> str:
    return ", ".join(str(listener) for listener in own(listeners)) or "nothing"


def misbound(listeners: Iterable[Listener], port: int) -> str | None:
    """Why an instance listening on `listeners` cannot answer on `port` from outside its
    container; None when it can, or listens on nothing yet (still starting)."""
    listening = own(listeners)
    if not listening:
        return None
    on_port = [listener for listener in listening if listener.port == port]
    if any(listener.everywhere for listener in on_port):
        return None
    if on_port:
        return (f"listens on {describe(on_port)} only, which the proxy cannot reach: "
                f"bind 0.0.0.0:$PORT ({port})")
    return f"listens on {describe(listening)}, not on $PORT ({port})"
