"""Rendering a `Policy` into the nftables transaction that installs it (pure).

The output is one file for `nft -f`, applied as one atomic transaction:

    table inet berth            (create it if missing, so the delete below cannot fail)
    delete table inet berth     (drop the old version, only ours)
    table inet berth { ... }    (the new version)

Nothing else in the ruleset is flushed or edited: Docker's tables, ufw's chains and anyone
else's stay as they are. If the kernel refuses any line the whole file is refused and the
previous table stays.

Hooks, and why they see what they must:
- `input`, policy drop: what reaches the host's own sockets. Echo requests over the rate
  are dropped before the established/related shortcut: conntrack files every echo of one
  ping process under one flow, so a flood would otherwise pass as "established".
- `forward`, policy accept, priority filter - 10: Docker DNATs published ports in
  prerouting (priority dstnat, -100), before any forward hook runs, so this chain sees the
  packet already addressed to the container; `ct original proto-dst` still knows the
  host port it was sent to, which is what `publish` names. Packets headed into a container
  interface go through `into_containers`, which lets through replies to connections the
  container opened, traffic from containers themselves, trusted interfaces and published
  exceptions, and drops every other new connection. A drop in any base chain is final
  whatever Docker's own chains (priority filter) say later, so the hole Docker opens in
  its FORWARD chain is closed here.
- No output chain: the host's own traffic (the proxy reaching containers on
  127.0.0.1-published ports, containers' replies) is never filtered by Berth.

The table's comment carries a digest of the rest of the table, which is how re-applying an
unchanged configuration is recognised as a no-op.
"""

from __future__ import annotations

import hashlib
import re

from agent.firewall.coexist import Neighbour
from agent.firewall.policy import Policy
from agent.firewall.results import FirewallPlan
from agent.firewall.rules import PortRule
from agent.firewall.settings import FirewallSettings
from agent.firewall.sshd import SshPorts

TABLE = "inet berth"
_DIGEST = re.compile(r'comment "berth sha256:([0-9a-f]{16})"')
_SSH_RULE = re.compile(r'^\s*tcp dport (\{ [0-9, ]+ \}|[0-9]+) accept comment "ssh"$', re.MULTILINE)

_INTRO = """\
# Berth's host firewall. Loaded with `nft -f` as one transaction that replaces
# table inet berth and touches no other table (Docker's and anyone else's stay).
"""
_HEADER = """\
table inet berth
delete table inet berth
"""

_INPUT_HEAD = """\
	chain input {
		type filter hook input priority filter - 10; policy drop;
		iif "lo" accept
		icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } \
ip6 hoplimit 255 accept comment "IPv6 neighbour discovery"
		ct state invalid drop
		icmp type echo-request limit rate over {rate}/second burst {burst} packets drop \
comment "ping flood"
		icmpv6 type echo-request limit rate over {rate}/second burst {burst} packets drop \
comment "ping flood"
		ct state established,related accept
		iif != "lo" ip daddr 127.0.0.0/8 drop comment "loopback addresses from outside"
		iif != "lo" ip6 daddr ::1 drop comment "loopback addresses from outside"
		icmp type { destination-unreachable, time-exceeded, parameter-problem, echo-request } \
accept
		icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, \
parameter-problem, mld-listener-query, echo-request } accept
		ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies"
"""


def build_plan(
    settings: FirewallSettings, ssh: SshPorts, neighbours: list[Neighbour]
) -> FirewallPlan:
    """The plan for `settings` given the SSH ports and neighbours found (pure)."""
    policy = Policy.build(settings, ssh.ports)
    table = render_table(policy)
    return FirewallPlan(
        text=transaction_for(table, plan_comments(ssh, neighbours)),
        digest=table_digest(table) or "",
        policy=policy,
        ssh=ssh,
        neighbours=tuple(neighbours),
        netns=settings.netns,
    )


def plan_comments(ssh: SshPorts, neighbours: list[Neighbour]) -> list[str]:
    """The `#` lines heading a plan: where the SSH ports came from, what else was found."""
    sources = ", ".join(f"{port} ({source})" for port, source in ssh.sources)
    lines = [f"SSH ports kept open: {sources}"]
    lines += list(ssh.notes)
    lines += [n.explanation for n in neighbours]
    return lines


def render_transaction(policy: Policy, comments: list[str] | None = None) -> str:
    """The exact text given to `nft -f` to install `policy`, after `comments` lines."""
    return transaction_for(render_table(policy), comments or [])


def transaction_for(table: str, comments: list[str]) -> str:
    notes = "".join(f"# {line}\n" for line in comments)
    return _INTRO + notes + _HEADER + table


def render_table(policy: Policy) -> str:
    body = _render_chains(policy)
    return f'table {TABLE} {{\n\tcomment "berth sha256:{digest(body)}"\n\n{body}}}\n'


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def table_digest(listing: str | None) -> str | None:
    """The digest a live table (as `nft list table` prints it) was made from, if Berth's."""
    if listing is None:
        return None
    match = _DIGEST.search(listing)
    return match.group(1) if match else None


def table_ssh_ports(listing: str | None) -> tuple[int, ...]:
    """The SSH ports a loaded Berth table lets in (from its rule commented "ssh")."""
    match = _SSH_RULE.search(listing or "")
    if match is None:
        return ()
    return tuple(int(p) for p in re.findall(r"[0-9]+", match.group(1)))


def replace_transaction(listing: str | None) -> str:
    """The transaction putting back a table as `nft list table` printed it (None: no table)."""
    return _HEADER + (listing or "")


def remove_transaction() -> str:
    return "table inet berth\ndelete table inet berth\n"


def _render_chains(policy: Policy) -> str:
    return "\n".join([_render_input(policy), _render_forward(policy), _render_into(policy)])


def _render_input(policy: Policy) -> str:
    rate = policy.icmp_echo_rate
    lines = [_INPUT_HEAD.replace("{rate}", str(rate)).replace("{burst}", str(rate * 2))]
    for interface in policy.trusted_interfaces:
        lines.append(f'\t\tiifname "{interface}" accept comment "trusted interface"\n')
    if policy.ssh_ports:
        lines.append(f'\t\ttcp dport {_set(policy.ssh_ports)} accept comment "ssh"\n')
    if policy.web_ports:
        lines.append(f'\t\ttcp dport {_set(policy.web_ports)} accept comment "web"\n')
    for rule in policy.allow:
        match = f"{rule.protocol} dport {rule.ports}"
        lines += _sourced(rule, match, f"allow {rule.ports}/{rule.protocol}")
    lines.append("\t}\n")
    return "".join(lines)


def _render_forward(policy: Policy) -> str:
    lines = [
        "\tchain forward {\n",
        "\t\ttype filter hook forward priority filter - 10; policy accept;\n",
    ]
    if policy.container_interfaces:
        interfaces = _set(policy.container_interfaces, quote=True)
        lines.append(f"\t\toifname {interfaces} jump into_containers\n")
    lines.append("\t}\n")
    return "".join(lines)


def _render_into(policy: Policy) -> str:
    lines = [
        "\tchain into_containers {\n",
        (
            '\t\tct state established,related accept comment "replies to connections '
            'containers opened"\n'
        ),
    ]
    if policy.container_interfaces:
        interfaces = _set(policy.container_interfaces, quote=True)
        lines.append(f'\t\tiifname {interfaces} accept comment "from a container"\n')
    for interface in policy.trusted_interfaces:
        lines.append(f'\t\tiifname "{interface}" accept comment "trusted interface"\n')
    for rule in policy.publish:
        match = f"meta l4proto {rule.protocol} ct original proto-dst {rule.ports}"
        lines += _sourced(rule, match, f"publish {rule.ports}/{rule.protocol}")
    lines.append('\t\tcounter drop comment "new connection from outside into a container"\n')
    lines.append("\t}\n")
    return "".join(lines)


def _sourced(rule: PortRule, match: str, comment: str) -> list[str]:
    """Accept lines for `match`, one per address family when the rule names sources."""
    if not rule.sources:
        return [f'\t\t{match} accept comment "{comment}"\n']
    lines = []
    for family, version in (("ip", 4), ("ip6", 6)):
        networks = [str(n) for n in rule.sources if n.version == version]
        if networks:
            lines.append(
                f'\t\t{family} saddr {_set(networks)} {match} accept comment "{comment}"\n'
            )
    return lines


def _set(items: tuple[object, ...] | list[str], *, quote: bool = False) -> str:
    texts = [f'"{i}"' if quote else str(i) for i in items]
    return texts[0] if len(texts) == 1 else "{ " + ", ".join(texts) + " }"
