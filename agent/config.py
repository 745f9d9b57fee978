"""Berth's configuration: read once from berth.toml, frozen, grouped by concern.

The file is /etc/berth/berth.toml unless `BERTH_CONFIG` names another; a missing file
means all defaults. The `[paths]` section lives in `agent.paths`, which the CLI reads
alone (it needs only the control socket, and starts faster without the subsystems). Each table maps to one frozen dataclass owned by the subsystem that
uses it (`[proxy]` -> `agent.proxy.settings.ProxySettings`, ...); this module owns only
the sections that belong to no single subsystem (paths, the control socket, SSH, deploys)
and the composition. Nothing below the CLI's and the agent's entry points reads the
environment: they call `load_config()` once and pass the result down.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.addons.settings import AddonSettings
from agent.backups.settings import BackupSettings
from agent.build.settings import BuildSettings
from agent.certs.settings import AcmeSettings
from agent.errors import ConfigError
from agent.firewall.settings import FirewallSettings
from agent.paths import CONFIG_ENV, DEFAULT_CONFIG_PATH, PathSettings, config_path, read_toml
from agent.proxy.settings import ProxySettings
from agent.settings import load_section


@dataclass(frozen=True)
class SshSettings:
    """The git/SSH side (`[ssh]`): who owns the repos and how keys are written."""

    user: str = "berth"
    authorized_keys: Path = Path("/home/berth/.ssh/authorized_keys")
    # The command sshd runs for every key; empty means the `berth` executable found next
    # to the running interpreter (or on PATH).
    command: str = ""


@dataclass(frozen=True)
class DeploySettings:
    """How releases are started, checked, swapped and kept (`[deploy]`)."""

    # Global domain: an app gets APP.<domain> when set.
    domain: str = ""
    container_port: int = 5000
    health_timeout: float = 60.0
    health_interval: float = 1.0
    drain_timeout: float = 30.0
    stop_timeout: float = 10.0
    release_timeout: float = 600.0
    run_timeout: float = 3600.0  # `berth run` one-off commands
    keep_releases: int = 5
    restart_policy: str = "unless-stopped"
    log_max_size: str = "10m"
    log_max_files: int = 3
    max_body_bytes: int = 100 * 1024 * 1024
    # Largest pushed tree (uncompressed) a deploy accepts.
    max_push_bytes: int = 1024 * 1024 * 1024
    # Host ports (on 127.0.0.1 only) published for web instances.
    port_range_start: int = 20000
    port_range_end: int = 29999
    # Seconds a non-web instance must stay up before a deploy counts it as started.
    settle_time: float = 2.0
    # Start a push's instances while its image's last layer is committed
    # (agent.deploy.earlystart); off: start them from the finished image.
    early_start: bool = True
    # Every container's limits unless `ps:limit` says otherwise ("" / 0: none).
    memory_limit: str = "1g"
    cpu_limit: float = 1.0
    pids_limit: int = 1024

    def __post_init__(self) -> None:
        if not 1024 <= self.port_range_start <= self.port_range_end <= 65535:
            raise ValueError("port_range_start/port_range_end must be 1024-65535, start <= end")


@dataclass(frozen=True)
class DockerSettings:
    """How to reach the Docker engine (`[docker]`)."""

    url: str = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Config:
    paths: PathSettings = field(default_factory=PathSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    acme: AcmeSettings = field(default_factory=AcmeSettings)
    firewall: FirewallSettings = field(default_factory=FirewallSettings)
    addons: AddonSettings = field(default_factory=AddonSettings)
    backups: BackupSettings = field(default_factory=BackupSettings)
    # Where this configuration came from (None: defaults only).
    source: Path | None = field(default=None, metadata={"config": False})


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration file; a missing default file means defaults."""
    environ = os.environ if environ is None else environ
    path = path or config_path(environ)
    text = read_toml(path, explicit=path != DEFAULT_CONFIG_PATH or bool(environ.get(CONFIG_ENV)))
    return Config() if text is None else parse_config(text, source=path)


def parse_config(text: str, source: Path | None = None) -> Config:
    """Parse berth.toml text into a `Config` (pure)."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = f"{source}: " if source else ""
        raise ConfigError("", f"{where}not valid TOML: {exc}") from exc
    return replace(load_section(Config, table, ""), source=source)
