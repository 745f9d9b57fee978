"""What the firewall service answers: plans, apply results and status (pure values).

Each has `to_dict()` for `--json` and the control API, and `render()`, the text the CLI
prints as is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.firewall.coexist import Neighbour
from agent.firewall.policy import Allowance, Policy, Verdict
from agent.firewall.sockets import ListeningSocket
from agent.firewall.sshd import SshPorts


@dataclass(frozen=True)
class FirewallPlan:
    """What `apply` would install: `text` is the exact input of `nft -f`."""

    text: str
    digest: str
    policy: Policy
    ssh: SshPorts
    neighbours: tuple[Neighbour, ...]
    netns: str

    def render(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "digest": self.digest,
            "netns": self.netns,
            "ssh_ports": list(self.ssh.ports),
            "notes": list(self.ssh.notes),
            "allowed": [a.to_dict() for a in self.policy.allowances()],
            "neighbours": [n.to_dict() for n in self.neighbours],
        }


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    message: str
    digest: str
    # Wall-clock time (epoch seconds) at which the change reverts unless confirmed.
    pending_confirm_until: float | None = None
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        return "\n".join([self.message, *self.notes])

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "message": self.message,
            "digest": self.digest,
            "pending_confirm_until": self.pending_confirm_until,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class SocketReach:
    socket: ListeningSocket
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.socket.protocol,
            "port": self.socket.port,
            "address": self.socket.address,
            "process": self.socket.process,
            "target": self.socket.target,
            "reachable": self.verdict.state,
            "reason": self.verdict.reason,
        }


@dataclass(frozen=True)
class FirewallStatus:
    enabled: bool
    netns: str
    active: bool  # Berth's table is loaded
    live_digest: str | None  # digest carried by the loaded table
    config_digest: str  # digest of what the configuration would load now
    allowed: tuple[Allowance, ...]
    sockets: tuple[SocketReach, ...]
    neighbours: tuple[Neighbour, ...]
    pending_confirm_until: float | None = None
    last_revert: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    boot_ruleset: str | None = None  # where the ruleset loaded at boot is saved, if anywhere
    boot_saved: bool = False
    boot_digest: str | None = None  # digest of the saved table

    @property
    def current(self) -> bool:
        return self.active and self.live_digest == self.config_digest

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "netns": self.netns,
            "active": self.active,
            "current": self.current,
            "live_digest": self.live_digest,
            "config_digest": self.config_digest,
            "pending_confirm_until": self.pending_confirm_until,
            "last_revert": self.last_revert,
            "boot_ruleset": self.boot_ruleset,
            "boot_saved": self.boot_saved,
            "boot_digest": self.boot_digest,
            "allowed": [a.to_dict() for a in self.allowed],
            "sockets": [s.to_dict() for s in self.sockets],
            "neighbours": [n.to_dict() for n in self.neighbours],
            "notes": list(self.notes),
        }

    def render(self) -> str:
        lines = [self._headline()]
        if self.boot_ruleset is not None:
            lines.append(self._boot_line())
        if self.pending_confirm_until is not None:
            lines.append(
                f"Waiting for confirmation until {_clock(self.pending_confirm_until)}: "
                "run `berth firewall:confirm` or the change reverts."
            )
        if self.last_revert:
            lines.append(self.last_revert)
        lines.append("")
        lines.append("Allowed from outside:" if self.active else "Allowed once applied:")
        lines += [f"  {a.kind:<8} {a.what}" for a in self.allowed]
        lines.append("")
        lines += self._render_sockets()
        if self.neighbours or self.notes:
            lines.append("")
            lines += [f"Note: {n.explanation}" for n in self.neighbours]
            lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _headline(self) -> str:
        where = f" in network namespace {self.netns}" if self.netns else ""
        if not self.active:
            state = "not active: nothing filtered by Berth"
        elif self.live_digest is None:
            state = "table inet berth present but not made by Berth"
        elif self.current:
            state = "active, matches the configuration"
        else:
            state = "active, differs from the configuration (run `berth firewall:apply`)"
        enabled = "true" if self.enabled else "false"
        return f"Firewall{where}: {state} (firewall.enabled = {enabled})"

    def _boot_line(self) -> str:
        if not self.boot_saved:
            return f"At boot: nothing is loaded (no {self.boot_ruleset})."
        if self.active and self.boot_digest == self.live_digest:
            return f"At boot: {self.boot_ruleset} loads the table loaded now."
        return (f"At boot: {self.boot_ruleset} loads another table than the one loaded now "
                "(run `berth firewall:apply`).")

    def _render_sockets(self) -> list[str]:
        if not self.sockets:
            return ["Listening sockets and published ports: none"]
        rows = [("PROTO", "PORT", "ADDRESS", "PROCESS", "FROM OUTSIDE")]
        for reach in self.sockets:
            s, v = reach.socket, reach.verdict
            owner = f"{s.process} to {s.target}" if s.target else s.process or "-"
            rows.append((s.protocol, str(s.port), s.address, owner, f"{v.state} ({v.reason})"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["Listening sockets and published ports:"]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  " + "  ".join([*cells, row[4]]))
        return lines


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))
