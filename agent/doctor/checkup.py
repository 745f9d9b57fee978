"""Running every check of `berth doctor` in order: the host (engine, disk, memory,
clock), the network (ACME; the package registries as builds reach them,
agent.doctor.registries), then what the agent knows and answers:
ports 80/443 on this server's address and every app domain's addresses (whether this
agent's proxy answers Berth's probe there, agent.doctor.portprobe), DNS of app domains,
certificates, firewall, add-on backups, restarts. With a key limited to apps, the ports
check probes an app domain only on its public (global unicast) addresses and says only
whether this agent answered, never what else did: a domain is the key holder's to choose,
and it must not turn the server into a scanner of its own network. A probe that raises
becomes a `warn`
naming what could not be checked; one the caller's key may not ask for (an app key's
certificates and firewall) is a `skip` saying it needs an admin key; the other checks
still run."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.cli.starthint import start_hint
from agent.config import Config
from agent.doctor import findings, portprobe, probes, registries
from agent.doctor.findings import CA_HINT, Finding
from agent.errors import AgentUnavailable
from agent.proxy.probe import Challenge

log = logging.getLogger(__name__)



class NeedsAdminKey(Exception):
    """The agent refused what a check asks for: the caller's key is limited to apps."""


class AgentFacts(Protocol):
    """What the running agent knows, as its API answers it."""

    def apps(self) -> list[dict[str, Any]]: ...

    def certificates(self) -> list[dict[str, Any]]: ...

    def firewall(self) -> dict[str, Any]: ...

    def probe(self) -> dict[str, Any]: ...  # domains with a certificate; is the key limited?

    def challenges(self, count: int) -> list[Challenge]: ...  # one per address to probe


@dataclass(frozen=True)
class Looks:
    """How names and this host's addresses are found (the system's resolver and default
    routes; a test names its own)."""

    resolve: Callable[[str], list[str]] = probes.resolve
    own_addresses: Callable[[], set[str]] = probes.own_addresses
    ipv6_addresses: Callable[[], set[str]] = probes.ipv6_addresses
    public: Callable[[str], bool] = lambda address: is_public(address)


def checkup(config: Config, agent: AgentFacts, looks: Looks | None = None) -> list[Finding]:
    found: list[Finding] = []
    for name, check in _checks(config, agent, looks or Looks()):
        try:
            result = check()
        except NeedsAdminKey:
            result = [Finding("skip", name, "not checked: this check needs an admin key "
                              "(this key is limited to apps)")]
        except Exception as exc:  # a task boundary: one broken probe never stops the rest
            log.debug("doctor check failed check=%s", name, exc_info=True)
            result = [Finding("warn", name, f"could not check: {exc}")]
        found.extend(result if isinstance(result, list) else [result])
    return found


Check = Callable[[], "Finding | list[Finding]"]


def _checks(config: Config, agent: AgentFacts, looks: Looks) -> list[tuple[str, Check]]:
    return [
        ("docker engine", lambda: _engine_and_disk(config)),
        ("memory", lambda: findings.memory(*probes.memory())),
        ("acme", lambda: _acme_and_clock(config)),
        ("registries", lambda: registries.check(config)),
        ("ports", lambda: _ports(config, agent, looks)),
        ("dns", lambda: _dns(config, agent, looks)),
        ("certificates", lambda: findings.certificates(agent.certificates())),
        ("firewall", lambda: findings.firewall(agent.firewall())),
        ("backups", lambda: findings.backups(agent.apps())),
        ("agent restarts", lambda: findings.restarts(probes.agent_restarts())),
    ]


def _engine_and_disk(config: Config) -> list[Finding]:
    try:
        version, root, layers = probes.docker_engine(config.docker.url)
    except probes.EngineUnavailable as exc:
        engine = Finding("fail", "docker engine", f"not answering at {config.docker.url}: {exc}",
                         "systemctl start docker (or /etc/init.d/docker start)")
        return [engine, findings.disk("/var/lib", *probes.disk(Path("/var/lib")), None)]
    engine = Finding("ok", "docker engine", f"Docker {version} answers")
    return [engine, findings.disk(str(root), *probes.disk(root), layers)]


def _acme_and_clock(config: Config) -> list[Finding]:
    acme = config.acme
    directory = acme.staging_directory if acme.staging else acme.directory
    reach = probes.https_get(directory, acme.ca_bundle)
    host = directory.split("/")[2]
    return [findings.reachable(f"acme {host}", reach.error, tls_failure=reach.tls_failure,
                               hint=CA_HINT),
            findings.clock(reach.date_offset, host)]


def _ports(config: Config, agent: AgentFacts, looks: Looks) -> list[Finding]:
    """Berth's probe sent to this server's address on both ports and to every address of
    every app domain on port 80 (and 443 over TLS where the proxy has its certificate)."""
    try:
        probe = agent.probe()
    except AgentUnavailable:
        ports = "/".join(str(p) for p in (config.proxy.http_port, config.proxy.https_port)
                         if p is not None)
        return [Finding("fail", "ports", f"nothing answers for Berth on ports {ports}: the "
                        "agent is not running", start_hint())]
    own = sorted(looks.own_addresses())
    targets = _port_targets(config, own, sorted(probe.get("tls_hosts") or []),
                            {domain: looks.resolve(domain) for domain in _domains(agent)})
    limited = bool(probe.get("limited"))  # this server's own addresses are not the key's
    skipped = [t for t in targets
               if limited and t.domain is not None and not looks.public(t.address)]
    targets = [t for t in targets if t not in skipped]
    answers = _probe(agent, targets)
    server = findings.ThisServer(own, tuple(config.acme.public_addresses), start_hint())
    if limited:
        return [*(findings.not_probed(t.port, t.address, t.domain or "") for t in skipped),
                *(findings.reached_or_not(t.port, t.address, t.domain, a.who, a.detail, server)
                  for t, a in zip(targets, answers, strict=True))]
    return [findings.reached(t.port, t.address, t.domain, a.who, a.detail, server)
            for t, a in zip(targets, answers, strict=True)]


def _probe(agent: AgentFacts, targets: list[portprobe.Target]) -> list[portprobe.Answered]:
    """Who answers each target, probed a batch at a time with nonces asked for just before
    (a nonce is answered only within seconds of being issued)."""
    answers: list[portprobe.Answered] = []
    for start in range(0, len(targets), portprobe.PARALLEL):
        batch = targets[start:start + portprobe.PARALLEL]
        answers += portprobe.probe_all(batch, agent.challenges(len(batch)))
    return answers


_EMBEDS_IPV4 = (ipaddress.ip_network("64:ff9b::/96"),  # NAT64's well-known prefix
                ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
                ipaddress.ip_network("::/96"))  # IPv4-compatible (deprecated)


def is_public(address: str) -> bool:
    """A global unicast address (not private, loopback, link-local, shared, reserved,
    documentation or multicast; an IPv6 address carrying an IPv4 one, mapped, translated or
    through NAT64, judged as that IPv4 address)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        elif any(parsed in network for network in _EMBEDS_IPV4):
            parsed = ipaddress.IPv4Address(int(parsed) & 0xFFFFFFFF)
    return parsed.is_global and not parsed.is_multicast


def _port_targets(config: Config, own: list[str], tls_hosts: list[str],
                  domains: dict[str, list[str]]) -> list[portprobe.Target]:
    """This server's addresses on both ports (over HTTPS with the name of a domain the
    proxy has a certificate for, if any), then each domain's addresses on port 80, and on
    443 where the proxy has the domain's certificate."""
    http, https = config.proxy.http_port, config.proxy.https_port
    if not own:  # no default route: the proxy's own listening address at least
        own = ["127.0.0.1" if config.proxy.listen in ("0.0.0.0", "::", "")
               else config.proxy.listen]
    targets = []
    for address in own:
        targets.append(portprobe.Target(address, http, address))
        if https is not None:
            targets.append(portprobe.Target(address, https, tls_hosts[0] if tls_hosts else "",
                                            tls=True))
    for domain, addresses in domains.items():
        for address in addresses:
            targets.append(portprobe.Target(address, http, domain, domain=domain))
            if domain in tls_hosts and https is not None:
                targets.append(portprobe.Target(address, https, domain, True, domain))
    return targets


def _domains(agent: AgentFacts) -> list[str]:
    return sorted({d for app in agent.apps() for d in app.get("domains", [])})


def _dns(config: Config, agent: AgentFacts, looks: Looks) -> list[Finding]:
    server = looks.own_addresses() | looks.ipv6_addresses() | set(config.acme.public_addresses)
    domains = _domains(agent)
    if not domains:
        return [Finding("ok", "dns", "no app domains yet")]
    ipv6_served = _listens_on_ipv6(config.proxy.listen)
    return [findings.dns(domain, looks.resolve(domain), server, ipv6_served=ipv6_served)
            for domain in domains]


def _listens_on_ipv6(listen: str) -> bool:
    """Whether the proxy's `listen` address takes IPv6 clients (`::`, or an IPv6 one)."""
    try:
        return ipaddress.ip_address(listen).version == 6
    except ValueError:
        return True  # a name, or "": resolved at start, not judged here
