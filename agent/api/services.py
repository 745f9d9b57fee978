"""What the control API's endpoints reach: the stores and the agent's services.

The agent builds one `Services` at start and hands it to `build_api`; tests build one
with real stores in a temp dir and whatever real or small fake services they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agent.config import Config
from agent.deploy.loghistory import LogHistory
from agent.deploy.orchestrator import Deployer
from agent.deploy.runtime import ContainerRuntime
from agent.proxy import RouteCounters
from agent.proxy.probe import Challenge
from agent.services.apps import Apps
from agent.services.config import ConfigVars
from agent.services.domains import Domains
from agent.services.keys import Keys
from agent.services.storage import Storage
from agent.store.apps import AppStore
from agent.store.audit import AuditStore
from agent.store.events import EventStore
from agent.store.keys import KeyStore
from agent.store.releases import ReleaseStore

if TYPE_CHECKING:
    from agent.addons.service import AddonService
    from agent.backups.restore import AppInstances
    from agent.backups.scheduler import BackupScheduler
    from agent.backups.service import BackupService
    from agent.certs.manager import CertificateManager
    from agent.firewall.service import FirewallService
    from agent.serverbackup.service import ServerBackups
    from agent.store.limits import LimitStore


class ProxyView(Protocol):
    """Read-only view of the proxy the API shows (an app's traffic counters, what
    `berth doctor` probes with)."""

    def counters(self, name: str) -> RouteCounters: ...

    def probe_challenges(self, count: int, caller: str = "") -> list[Challenge]: ...  # doctor

    def serves_tls(self, host: str) -> bool: ...  # it holds a certificate for `host`


@dataclass
class Services:
    config: Config
    apps: AppStore
    releases: ReleaseStore
    events: EventStore
    keys: KeyStore
    deployer: Deployer
    runtime: ContainerRuntime
    ssh_command: str  # the shell command prefix that runs `berth` as the berth user
    proxy: ProxyView | None = None
    certificates: CertificateManager | None = None
    firewall: FirewallService | None = None
    version: str = ""
    history: LogHistory | None = None  # what removed instances last said
    audit: AuditStore | None = None  # who changed what (agent.api.audit writes it)
    addons: AddonService | None = None
    backups: BackupService | None = None
    app_instances: AppInstances | None = None  # stopped and started around a restore
    backup_scheduler: BackupScheduler | None = None
    limits: LimitStore | None = None  # ps:limit
    server_backups: ServerBackups | None = None  # berth backup / restore

    # The service layer (agent.services): one owner per change and its event.

    def app_service(self) -> Apps:
        return Apps(self.config, self.apps, self.events, self.deployer, self.ssh_command,
                    before_destroy=self.backups.retire_app if self.backups else None)

    def config_service(self) -> ConfigVars:
        return ConfigVars(self.apps, self.events, self.deployer)

    def key_service(self) -> Keys:
        return Keys(self.config, self.keys, self.ssh_command)

    def storage_service(self) -> Storage:
        return Storage(self.config.paths.storage, self.apps, self.releases, self.events,
                       self.deployer)

    def domain_service(self) -> Domains:
        return Domains(self.config.deploy.domain, self.apps, self.events, self.deployer)
