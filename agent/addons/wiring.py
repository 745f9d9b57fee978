"""Making the agent's add-on and backup services from its configuration (once, at
start), and the app instances a restore stops and starts (the deployer's)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import docker

from agent.addons.engine import AddonEngine
from agent.addons.service import AddonService, ConfigOwner
from agent.addons.store import AddonStore
from agent.backups.offsite import OffsiteStore
from agent.backups.service import BackupService
from agent.backups.store import BackupStore
from agent.config import Config
from agent.deploy.docker_runtime import installation_id
from agent.deploy.orchestrator import Deployer
from agent.deploy.output import DeployOutput
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore


def build_addons(config: Config, db: Database, client: docker.DockerClient,
                 config_vars: ConfigOwner, apps: AppStore, events: EventStore) -> AddonService:
    return AddonService(
        settings=config.addons, data_dir=config.paths.data_dir,
        restart_policy=config.deploy.restart_policy, store=AddonStore(db),
        engine=AddonEngine(client, installation_id(config.paths.data_dir)), apps=apps,
        events=events, config=config_vars)


def build_backups(config: Config, addons: AddonService, db: Database,
                  events: EventStore) -> BackupService:
    offsite = OffsiteStore(config.backups) if config.backups.offsite else None
    return BackupService(addons, BackupStore(db), events, offsite)


class DeployedInstances:
    """An app's instances through the deployer: running means deployed and not stopped."""

    def __init__(self, deployer: Deployer, apps: AppStore, releases: ReleaseStore) -> None:
        self._deployer = deployer
        self._apps = apps
        self._releases = releases

    def running(self, app: str) -> bool:
        return self._releases.live(app) is not None and not self._apps.get(app).stopped

    def hold(self, app: str, out: DeployOutput) -> AbstractAsyncContextManager[None]:
        return self._deployer.app_lock(app, out)

    async def stop(self, app: str, out: DeployOutput) -> None:
        await self._deployer.stop_holding(app, out)

    async def start(self, app: str, out: DeployOutput) -> None:
        await self._deployer.start_holding(app, out)
