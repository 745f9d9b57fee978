"""Running every check of `berth doctor` in order: the host (engine, disk, memory,
clock), the network (ACME, package registries, ports), then what the agent knows (DNS of
app domains, certificates, firewall, add-on backups, restarts). A probe that raises becomes a `warn`
naming what could not be checked; one the caller's key may not ask for (an app key's
certificates and firewall) is a `skip` saying it needs an admin key; the other checks
still run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent.config import Config
from agent.doctor import findings, probes
from agent.doctor.findings import Finding

log = logging.getLogger(__name__)

REGISTRIES = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")
CA_HINT = ("a TLS proxy intercepts outbound HTTPS: set build.ca_bundle to its CA bundle "
           "(and acme.ca_bundle for ACME)")


class NeedsAdminKey(Exception):
    """The agent refused what a check asks for: the caller's key is limited to apps."""


class AgentFacts(Protocol):
    """What the running agent knows, as its API answers it."""

    def apps(self) -> list[dict[str, Any]]: ...

    def certificates(self) -> list[dict[str, Any]]: ...

    def firewall(self) -> dict[str, Any]: ...


def checkup(config: Config, agent: AgentFacts) -> list[Finding]:
    found: list[Finding] = []
    for name, check in _checks(config, agent):
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


def _checks(config: Config, agent: AgentFacts) -> list[tuple[str, Check]]:
    return [
        ("docker engine", lambda: _engine_and_disk(config)),
        ("memory", lambda: findings.memory(*probes.memory())),
        ("acme", lambda: _acme_and_clock(config)),
        ("registries", lambda: _registries(config)),
        ("ports", lambda: _ports(config)),
        ("dns", lambda: _dns(config, agent)),
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


def _registries(config: Config) -> list[Finding]:
    return [findings.reachable(f"registry {host}", reach.error, tls_failure=reach.tls_failure,
                               hint=CA_HINT)
            for host in REGISTRIES
            for reach in [probes.tls_handshake(host, config.build.ca_bundle)]]


def _ports(config: Config) -> list[Finding]:
    host = "127.0.0.1" if config.proxy.listen in ("0.0.0.0", "::", "") else config.proxy.listen
    ports = [config.proxy.http_port]
    if config.proxy.https_port is not None:
        ports.append(config.proxy.https_port)
    found = []
    for port in ports:
        error = probes.listening(host, port)
        if error is None:
            found.append(Finding("ok", f"port {port}", "the proxy accepts connections"))
        else:
            found.append(Finding("fail", f"port {port}", f"nothing accepts on {host}:{port} "
                                 f"({error})", "start the agent; see berth version"))
    return found


def _dns(config: Config, agent: AgentFacts) -> list[Finding]:
    server = probes.own_addresses() | set(config.acme.public_addresses)
    domains = sorted({d for app in agent.apps() for d in app.get("domains", [])})
    if not domains:
        return [Finding("ok", "dns", "no app domains yet")]
    return [findings.dns(domain, probes.resolve(domain), server) for domain in domains]
