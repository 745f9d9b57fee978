"""Judging what the probes saw: each check's facts in, one `Finding` out (pure).

A finding is `ok`, `warn`, `fail` or `skip` (not checked, with why), names what it is
about, and, when not ok, says the fix in one line the user can act on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["ok", "warn", "fail", "skip"]
GIB = 1024 ** 3
MIB = 1024 ** 2
CA_HINT = ("a TLS proxy intercepts outbound HTTPS: set build.ca_bundle to its CA bundle "
           "(and acme.ca_bundle for ACME)")


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    message: str
    fix: str = ""


def render(findings: Sequence[Finding]) -> str:
    """The report: one line per finding, its fix indented below it."""
    lines = []
    for finding in findings:
        lines.append(f"{finding.level:<4}  {finding.subject}: {finding.message}")
        if finding.fix and finding.level != "ok":
            lines.append(f"      fix: {finding.fix}")
    return "".join(line + "\n" for line in lines)


def disk(path: str, free: int, total: int, docker_bytes: int | None) -> Finding:
    share = f", Docker's images and layers use {docker_bytes / GIB:.1f} GiB" \
        if docker_bytes is not None else ""
    message = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB on {path}{share}"
    fix = "remove unused images (docker image prune -a) or grow the disk"
    if free < 2 * GIB:
        return Finding("fail", "disk", message + ": builds are refused below the minimum", fix)
    if free < 5 * GIB or free < total * 0.1:
        return Finding("warn", "disk", message, fix)
    return Finding("ok", "disk", message)


def memory(available: int, total: int) -> Finding:
    message = f"{available / MIB:.0f} MiB available of {total / MIB:.0f} MiB"
    fix = "scale apps down (berth ps:scale) or add memory or swap"
    if available < 128 * MIB:
        return Finding("fail", "memory", message, fix)
    if available < 384 * MIB:
        return Finding("warn", "memory", message, fix)
    return Finding("ok", "memory", message)


def clock(offset: float | None, reference: str) -> Finding:
    if offset is None:
        return Finding("warn", "clock", f"not compared: {reference} did not answer",
                       "check the network, then run berth doctor again")
    message = f"{abs(offset):.1f} s {'ahead of' if offset > 0 else 'behind'} {reference}"
    if abs(offset) > 60:
        return Finding("fail", "clock", message + ": certificates and ACME fail",
                       "enable time sync (timedatectl set-ntp true, or install chrony)")
    if abs(offset) > 5:
        return Finding("warn", "clock", message, "enable time sync (timedatectl set-ntp true)")
    return Finding("ok", "clock", message)


def dns(domain: str, addresses: Sequence[str], server: Iterable[str], *,
        ipv6_served: bool = True) -> Finding:
    """Whether `domain` resolves to this server (`server`: its own addresses), its A
    records and its AAAA records each (`ipv6_served`: whether the proxy listens on IPv6).
    A wrong AAAA record fails: IPv6 clients, and Let's Encrypt, which prefers IPv6, reach
    another host; a wrong A record warns (it may be a NAT's address)."""
    subject = f"dns {domain}"
    if not addresses:
        return Finding("warn", subject, "does not resolve",
                       f"create an A (and AAAA) record for {domain} with this server's address")
    loopback = [a for a in addresses if ipaddress.ip_address(a).is_loopback]
    if loopback:
        return Finding("fail", subject, f"resolves to {', '.join(loopback)}, a loopback address "
                       "(as Debian's 127.0.1.1 line in /etc/hosts does for the host's own name)",
                       f"remove {domain} from /etc/hosts and point its DNS record at this server")
    mine = set(server)
    aaaa = [a for a in addresses if ipaddress.ip_address(a).version == 6]
    wrong_aaaa = _aaaa(domain, aaaa, mine, ipv6_served)
    if wrong_aaaa is not None:
        return wrong_aaaa
    a_records = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    if mine and a_records and not mine.intersection(a_records):
        return Finding("warn", subject, f"resolves to {', '.join(addresses)}, not this server "
                       f"({', '.join(sorted(mine))})",
                       "point the record at this server (or list a NAT's address in "
                       "acme.public_addresses)")
    return Finding("ok", subject, f"resolves to {', '.join(addresses)}")


def _aaaa(domain: str, aaaa: Sequence[str], mine: set[str], ipv6_served: bool) -> Finding | None:
    """A failing finding when `domain`'s AAAA records lead IPv6 clients elsewhere."""
    if not aaaa or not mine:
        return None
    subject, listed = f"dns {domain}", ", ".join(aaaa)
    own6 = sorted(a for a in mine if ipaddress.ip_address(a).version == 6)
    if not mine.intersection(aaaa):
        where = f"this server's are {', '.join(own6)}" if own6 else "this server has none"
        fix = (f"point {domain}'s AAAA record at {own6[0]}" if own6
               else f"remove {domain}'s AAAA record (or give this server that address)")
        return Finding("fail", subject, f"its AAAA record ({listed}) is not this server's "
                       f"IPv6 address ({where}): IPv6 clients and Let's Encrypt, which "
                       "prefers IPv6, reach another host", fix)
    if not ipv6_served:
        return Finding("fail", subject, f"its AAAA record ({listed}) is this server, but the "
                       "proxy listens on IPv4 only (proxy.listen): IPv6 clients and Let's "
                       "Encrypt are refused",
                       f'set proxy.listen = "::" and restart the agent, or remove {domain}\'s '
                       "AAAA record")
    return None


def certificates(statuses: Sequence[dict[str, Any]]) -> list[Finding]:
    """One finding per domain whose certificate fails or expires soon, else one ok."""
    found = []
    for status in statuses:
        domain, days = status["domain"], status.get("days_left")
        subject = f"certificate {domain}"
        fix = f"see berth certs {status['app']}, then berth certs:renew {domain}"
        if status.get("state") in ("failing", "expired"):
            reason = status.get("last_error") or status["state"]
            found.append(Finding("fail", subject, f"{status['state']}: {reason}", fix))
        elif days is not None and days < 14:
            found.append(Finding("warn", subject, f"expires in {days:.0f} days", fix))
    if not found:
        found.append(Finding("ok", "certificates", f"{len(statuses)} domain(s), none failing "
                             "or expiring within 14 days"))
    return found


def backups(apps: Sequence[dict[str, Any]]) -> list[Finding]:
    """One finding per add-on whose last scheduled backup failed (fail), that has no
    backup for longer than its daily schedule allows (warn), or whose backups are not
    copied off-host (warn), else one ok."""
    found = []
    for app in apps:
        name = app["name"]
        for problem in app.get("backup_problems") or []:
            addon = problem["addon"]
            if problem["problem"] == "local-only":
                found.append(Finding(
                    "warn", f"backups {name} {addon}", problem["detail"],
                    "check [backups] s3_* in berth.toml and the target; uploads are retried "
                    f"(berth backups {name})"))
                continue
            failed = problem["problem"] == "failed"
            found.append(Finding(
                "fail" if failed else "warn", f"backups {name} {addon}",
                f"last scheduled backup failed: {problem['detail']}" if failed
                else f"overdue: {problem['detail']}",
                f"see berth addons {name}, then berth backups:capture {name} {addon}"))
    if not found:
        count = sum(int(app.get("addons") or 0) for app in apps)
        found.append(Finding("ok", "backups", f"{count} add-on(s), none failed or overdue"))
    return found


def firewall(status: dict[str, Any]) -> Finding:
    if status.get("active"):
        boot = _boot_ruleset_problem(status)
        if boot:
            return Finding("warn", "firewall", boot, "berth firewall:apply (it saves the table)")
        return Finding("ok", "firewall", "Berth's table is loaded: only SSH, 80, 443 and what "
                       "[firewall] allows get in")
    if status.get("enabled"):
        return Finding("fail", "firewall", "enabled in the configuration but not loaded",
                       "berth firewall:apply")
    return Finding("warn", "firewall", "off: Docker's published ports are reachable from outside",
                   "set [firewall] enabled = true, then berth firewall:apply")


def _boot_ruleset_problem(status: dict[str, Any]) -> str | None:
    """What is wrong with the table saved for boot, when the firewall is on."""
    path = status.get("boot_ruleset")
    if not path or not status.get("enabled"):
        return None
    if not status.get("boot_saved"):
        return (f"loaded, but not saved for boot ({path} is missing): after a reboot the "
                "host is open until the agent starts")
    if status.get("boot_digest") != status.get("live_digest"):
        return f"the table saved for boot ({path}) is not the one loaded now"
    return None


def reachable(subject: str, error: str | None, *, tls_failure: bool, hint: str) -> Finding:
    if error is None:
        return Finding("ok", subject, "reachable")
    if tls_failure:
        return Finding("fail", subject, f"TLS verification failed: {error}", hint)
    return Finding("fail", subject, f"not reachable: {error}",
                   "check the server's outbound network and DNS")


# How a build container failed to reach a registry, in words, and the fix when this host
# reaches it (Docker's network is at fault) or not (the server's network is).
_FAILED_TO = {
    "dns": "cannot resolve the name",
    "connect": "cannot connect",
    "handshake": "connects, but the TLS handshake does not complete",
    "timeout": "got no answer",
}
_DOCKER_FIX = {
    "dns": "check the DNS containers get: Docker copies /etc/resolv.conf but skips loopback "
           "resolvers (such as 127.0.0.53); set \"dns\" in /etc/docker/daemon.json to a "
           "resolver containers reach, then restart Docker",
    "connect": "check Docker's forwarding: net.ipv4.ip_forward = 1, and the iptables/nftables "
               "FORWARD chain must accept (and masquerade) docker0's traffic",
    "handshake": "check the MTU: set \"mtu\" in /etc/docker/daemon.json to the uplink's "
                 "(ip link) when it is below 1500, then restart Docker",
}
_DOCKER_FIX["timeout"] = _DOCKER_FIX["connect"]
_NETWORK_FIX = "check the server's outbound network and DNS (and a proxy in the way)"


def registry(target: str, kind: str, error: str, host_kind: str | None, *,
             where: str = "a build container", host_bundle: str = "") -> Finding:
    """How `where` reached a package registry (`kind` as agent.doctor.tlsreach says, or
    "timeout", or "failed"), judged with how this host did (`host_kind`; None: not
    compared): a registry the host reaches but builds do not is Docker's doing; one whose
    certificate the host trusts (through `host_bundle`) but builds do not wants that
    bundle as build.ca_bundle."""
    subject = f"registry {target}"
    if kind == "ok":
        return Finding("ok", subject, f"reachable from {where}")
    if kind == "verify":
        message = f"TLS verification failed from {where}: {error}"
        if host_kind == "ok" and host_bundle:
            return Finding("fail", subject, message + "; this host trusts it",
                           f'set build.ca_bundle = "{host_bundle}", the CA bundle this host '
                           "trusts it with (a TLS proxy intercepts outbound HTTPS)")
        return Finding("fail", subject, message, CA_HINT)
    message = f"{where} {_FAILED_TO[kind]} ({error})" if kind in _FAILED_TO else error
    if host_kind in ("ok", "verify") and kind in _DOCKER_FIX:  # the host gets through
        return Finding("fail", subject, message + "; this host reaches it: builds' network "
                       "(Docker's) is at fault", _DOCKER_FIX[kind])
    if host_kind is not None:
        message += f"; this host cannot either ({_FAILED_TO.get(host_kind, host_kind)})"
    return Finding("fail", subject, message, _NETWORK_FIX)


def restarts(count: int | None) -> Finding:
    if count is None:
        return Finding("ok", "agent restarts", "not counted (neither systemd nor install.sh's "
                       "respawning loop runs it)")
    if count > 0:
        return Finding("warn", "agent restarts", f"restarted {count} time(s) by its supervisor",
                       "read why: journalctl -u berth, or /var/log/berth/agent.stderr")
    return Finding("ok", "agent restarts", "none")



@dataclass(frozen=True)
class ThisServer:
    """This server as the ports check knows it: the addresses of its default routes, the
    NAT addresses in front of it (acme.public_addresses), how to start its agent."""

    addresses: Sequence[str]
    nat: Sequence[str] = ()
    start_hint: str = "start the agent"


def reached(port: int, address: str, domain: str | None, who: str, detail: str,
            server: ThisServer) -> Finding:
    """Who answered Berth's probe on `address`:`port` (for `domain`, or for this server's
    own address when None): this agent (ok), another server, or nothing (fail; warn for
    a NAT address of this server, which the server itself may not get back through)."""
    subject = f"port {port} {domain or address}"
    here = ", ".join([*server.addresses, *server.nat]) or "its address"
    if who == "this agent":
        if domain is not None and ipaddress.ip_address(address).is_loopback:
            return Finding("warn", subject, f"{domain} reaches this server on {address}, a "
                           "loopback address: from this machine only", f"point {domain}'s "
                           f"A/AAAA record at this server ({here}), not at a loopback address")
        return Finding("ok", subject, f"{domain} reaches this server on {address}" if domain
                       else f"this server's proxy answers on {address}")
    if who == "something":
        return Finding("ok", subject, f"accepts connections on {address} ({detail})")
    if domain is not None and address in server.nat:
        scheme = "https" if port == 443 else "http"
        return Finding("warn", subject, f"{domain} points at {address}, this server's NAT "
                       f"address (acme.public_addresses), which does not lead back here from "
                       f"the server itself ({detail})", f"check from outside: curl -I "
                       f"{scheme}://{domain}/ (the NAT must forward port {port} here)")
    if who == "another server":
        if domain is None:
            return Finding("fail", subject, f"another server answers on {address}:{port}, not "
                           f"Berth's proxy ({detail})", f"stop what holds port {port} "
                           f"(ss -ltnp 'sport = :{port}'), then restart the agent")
        return Finding("fail", subject, f"{domain} points at {address}, which is not this "
                       f"server ({detail})", f"point {domain}'s A/AAAA record at this server "
                       f"({here})")
    message = f"port {port} unreachable on {address} ({detail})"
    if domain is not None and address not in server.addresses:
        return Finding("fail", subject, message, f"point {domain}'s A/AAAA record at this "
                       f"server ({here}), or open port {port} on {address}")
    return Finding("fail", subject, message, f"the agent's proxy should answer there: "
                   f"{server.start_hint}; check that nothing on this server blocks port {port}")


def reached_or_not(port: int, address: str, domain: str | None, who: str, detail: str,
                   server: ThisServer) -> Finding:
    """Whether this agent answered Berth's probe on `address`:`port`, as a key limited to
    apps sees it: ok or not, never what else answered (or whether anything did). Only
    doctor's own words are kept (`something`: a connection this server's own HTTPS port
    accepted, where the proxy has no certificate to prove itself with)."""
    if who in ("this agent", "something"):
        return reached(port, address, domain, who, detail, server)
    subject = f"port {port} {domain or address}"
    here = ", ".join([*server.addresses, *server.nat]) or "its address"
    if domain is None:
        return Finding("fail", subject, f"this server's proxy does not answer on {address}",
                       "ask an admin to run berth doctor: it says what answers instead")
    return Finding("fail", subject, f"{domain} on {address} does not reach this server",
                   f"point {domain}'s A/AAAA record at this server ({here})")


def not_probed(port: int, address: str, domain: str) -> Finding:
    """An app domain's address that a key limited to apps may not have probed."""
    return Finding("skip", f"port {port} {domain}", f"not probed: {address} is not a public "
                   "address (a key limited to apps has only public addresses probed)",
                   "ask an admin to run berth doctor")
