"""The firewall policy (pure): what is let in, resolved from settings and the SSH ports.

`Policy` is the one input of the renderer and of the reachability judgement `judge()`,
which tells, for a listening socket, whether the outside can reach it and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.firewall.rules import PortRule
from agent.firewall.settings import FirewallSettings

# What `judge()` says about a listening socket.
OPEN = "open"  # anyone may connect
RESTRICTED = "restricted"  # only some sources or interfaces may connect
CLOSED = "closed"  # the firewall drops new connections from outside
LOCAL = "local"  # bound to loopback: never reachable from outside anyway


@dataclass(frozen=True)
class Allowance:
    """One line of "what is allowed": a kind (ssh, web, allow, publish, trusted), a rule."""

    kind: str
    what: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "what": self.what}


@dataclass(frozen=True)
class Verdict:
    state: str  # OPEN, RESTRICTED, CLOSED or LOCAL
    reason: str


@dataclass(frozen=True)
class Policy:
    ssh_ports: tuple[int, ...]
    web_ports: tuple[int, ...]
    allow: tuple[PortRule, ...]
    publish: tuple[PortRule, ...]
    trusted_interfaces: tuple[str, ...]
    container_interfaces: tuple[str, ...]
    icmp_echo_rate: int

    @classmethod
    def build(cls, settings: FirewallSettings, ssh_ports: tuple[int, ...]) -> Policy:
        return cls(
            ssh_ports=tuple(sorted(set(ssh_ports))),
            web_ports=tuple(sorted(set(settings.web_ports))),
            allow=settings.allow_rules(),
            publish=settings.publish_rules(),
            trusted_interfaces=settings.trusted_interfaces,
            container_interfaces=settings.container_interfaces,
            icmp_echo_rate=settings.icmp_echo_rate,
        )

    def allowances(self) -> list[Allowance]:
        """Everything the policy lets in from outside, in the order the ruleset checks it."""
        lines = [Allowance("ssh", f"{p}/tcp") for p in self.ssh_ports]
        lines += [Allowance("web", f"{p}/tcp") for p in self.web_ports]
        lines += [Allowance("allow", r.describe()) for r in self.allow]
        lines += [Allowance("publish", f"container port {r.describe()}") for r in self.publish]
        lines += [Allowance("trusted", f"everything via {i}") for i in self.trusted_interfaces]
        return lines

    def judge(self, protocol: str, port: int, *, loopback: bool, container: bool) -> Verdict:
        """Whether a socket listening on `port` is reachable from outside through this policy.

        `container` marks a port Docker publishes (its docker-proxy listens): outside
        traffic to it is DNAT'd into the forward path, so `publish` decides, not `allow`.
        """
        if loopback:
            return Verdict(LOCAL, "bound to loopback")
        rules = self.publish if container else self._input_rules()
        kind = "publish" if container else "allow"
        covering = [r for r in rules if r.covers(protocol, port)]
        if any(not r.sources for r in covering):
            return Verdict(OPEN, self._label(protocol, port, container, kind))
        if covering:
            sources = ",".join(str(s) for r in covering for s in r.sources)
            return Verdict(RESTRICTED, f"{kind}: only from {sources}")
        if self.trusted_interfaces:
            interfaces = ",".join(self.trusted_interfaces)
            return Verdict(RESTRICTED, f"only via trusted {interfaces}")
        if container:
            return Verdict(CLOSED, "published container port, not in firewall.publish")
        return Verdict(CLOSED, "not allowed")

    def _input_rules(self) -> list[PortRule]:
        rules = [PortRule("tcp", p, p) for p in self.ssh_ports + self.web_ports]
        return rules + list(self.allow)

    def _label(self, protocol: str, port: int, container: bool, kind: str) -> str:
        if container:
            return "publish: open to everyone"
        if protocol == "tcp" and port in self.ssh_ports:
            return "ssh"
        if protocol == "tcp" and port in self.web_ports:
            return "web"
        return kind
