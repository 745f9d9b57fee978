"""`berth agent`: the one asyncio process that runs Berth on a server.

It holds the proxy (data plane), the control API (Starlette under uvicorn on a unix
socket only root and the berth user can open), the deploy worker, the certificate
manager and the reconciler, over one SQLite database. Start-up order: state, proxy
(bound, not accepting yet), firewall, reconcile (routes restored before the API accepts
work), certificates, the proxy accepts, API.
Shutdown on SIGTERM/SIGINT: stop accepting API requests, let running operations and
in-flight proxied requests finish up to their deadlines (all within one stop budget
that fits the service's stop limit, `agent.shutdown`), then close. SIGHUP does the
same but keeps the listening sockets and execs the installed agent with them (see
`agent.handover`): a restart or an upgrade that refuses no connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import logging.handlers
import os
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import uvicorn

from agent.accesslog import AccessLogFile
from agent.addons.store import SCHEMA as ADDONS_SCHEMA
from agent.addons.wiring import DeployedInstances, build_addons, build_backups
from agent.api.app import build_api
from agent.api.services import Services
from agent.backups.scheduler import BackupScheduler
from agent.backups.store import SCHEMA as BACKUPS_SCHEMA
from agent.build import Builder
from agent.certs.manager import CertificateManager
from agent.certs.state import SCHEMA as CERTIFICATES_SCHEMA
from agent.config import Config
from agent.deploy.docker_runtime import DockerRuntime, installation_id
from agent.deploy.events import EngineEvents
from agent.deploy.loghistory import LogHistory
from agent.deploy.oomwatch import OomWatch
from agent.deploy.orchestrator import Deployer
from agent.deploy.reconciler import Reconciler
from agent.deploy.rollout import Rollout
from agent.errors import BerthError
from agent.firewall.service import FirewallService
from agent.handover import Listeners
from agent.installed import installed_version
from agent.limits import default_limits
from agent.paths import AGENT_UMASK, DEFAULT_CONFIG_PATH, open_log, prepare_state_dirs
from agent.proxy import Proxy
from agent.serverbackup.service import ServerBackups
from agent.services import boot
from agent.shutdown import DRAIN_SHARE, STOP_BUDGET, StopDeadline, StopSteps, stop_in_order
from agent.store.apps import AppStore
from agent.store.audit import AuditStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.keys import KeyStore
from agent.store.limits import SCHEMA as LIMITS_SCHEMA
from agent.store.limits import LimitStore
from agent.store.releases import ReleaseStore
from agent.store.schema import SCHEMA

log = logging.getLogger("berth.agent")

RECONCILE_INTERVAL = 30.0
ACCESS_LOG_BYTES = 100 * 1024 * 1024
SHUTDOWN_TIMEOUT = 30.0


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn without its own signal handling: the agent owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def default_ssh_command(config: Config) -> str:
    """The shell command sshd and git hooks run to reach this Berth installation."""
    if config.ssh.command:
        return config.ssh.command
    command = f"{shlex.quote(sys.executable)} -m agent"
    if config.source is not None and config.source != DEFAULT_CONFIG_PATH:
        command = f"env BERTH_CONFIG={shlex.quote(str(config.source))} {command}"
    return command


LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILES_KEPT = 5


def configure_logging(level: str, log_file: Path | None) -> None:
    """The agent's own log: stderr (systemd's journal rotates it), or a file rotated
    here (where nothing else would: the installer's loop without systemd)."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            os.close(open_log(log_file))  # LOG_FILE_MODE, whatever it was before
            handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILES_KEPT, encoding="utf-8")
        except OSError as exc:
            raise BerthError(f"cannot log to {log_file}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def run_agent(config: Config, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="berth agent")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-file", type=Path, default=None,
                        help="log there, rotated at 10 MiB, 5 files kept (default: stderr)")
    args = parser.parse_args(list(argv))
    os.umask(AGENT_UMASK)  # as the systemd unit's UMask=, also without systemd
    configure_logging(args.log_level, args.log_file)
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    outcome: Outcome = runner(serve(config))
    if outcome.restart_with is not None:
        try:
            outcome.restart_with.reexec()
        except OSError as exc:
            log.error("cannot restart in place: %s", exc)
            return 1
    return outcome.code


def control_socket(config: Config) -> socket.socket:
    """Bind the control socket in a 0750 root:<ssh.user> directory, the socket 0660."""
    run_dir = config.paths.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    gid = _group_id(config.ssh.user)
    os.chmod(run_dir, 0o750)
    if gid is not None and os.geteuid() == 0:
        os.chown(run_dir, 0, gid)
    path = config.paths.control_socket
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    if gid is not None and os.geteuid() == 0:
        os.chown(path, 0, gid)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _group_id(user: str) -> int | None:
    try:
        return grp.getgrnam(user).gr_gid
    except KeyError:
        log.warning("no group named %s: only root can use the control socket", user)
        return None


@dataclass
class Outcome:
    """How `serve` ended: its exit status, or the sockets to restart in place with."""

    code: int
    restart_with: Listeners | None = None


@dataclass
class Agent:
    """Everything `serve` starts, so shutdown can stop it in order."""

    db: Database
    listeners: Listeners
    proxy: Proxy
    services: Services
    reconciler: Reconciler
    certificates: CertificateManager
    access_log: AccessLogFile
    engine_events: EngineEvents
    oom_watch: OomWatch


async def build_agent(config: Config) -> Agent:
    prepare_state_dirs(config.paths)
    db = Database.open(config.paths.database, [SCHEMA, CERTIFICATES_SCHEMA, ADDONS_SCHEMA,
                                                   BACKUPS_SCHEMA, LIMITS_SCHEMA])
    apps, releases, events, keys = AppStore(db), ReleaseStore(db), EventStore(db), KeyStore(db)
    client = _docker_client(config.docker.url)  # before the proxy: a refusal binds nothing
    access_log = AccessLogFile(config.paths.access_log, max_bytes=ACCESS_LOG_BYTES, keep=5)
    proxy = Proxy(config.proxy, access_log=access_log.open())
    try:
        listeners = Listeners.open(config.proxy)  # passed on from the last agent, or bound
        # Listening; accepts once the routes are back.
        await proxy.start(restoring=True, sockets=listeners.for_proxy())
    except OSError as exc:  # the process ends: nothing bound outlives it
        raise BerthError(f"the proxy cannot listen on {config.proxy.listen} (ports "
                         f"{config.proxy.http_port}, {config.proxy.https_port}): "
                         f"{exc.strerror or exc}") from None
    limits = LimitStore(db)
    oom_watch = OomWatch()
    runtime = DockerRuntime(client, installation_id(config.paths.data_dir),
                            limits.resolver(default_limits(config.deploy)), oom=oom_watch,
                            build_steps=config.paths.build_steps)
    history = LogHistory(config.paths.app_logs)
    rollout = Rollout(runtime, proxy, config.deploy, history)
    certificates = _certificate_manager(config, db, proxy)
    builder = Builder(config.build, client, config.paths.build_steps)
    deployer = Deployer(
        config, apps, releases, events, runtime, builder, rollout,
        certificates=certificates, tls_hosts=proxy.certificates.names,
    )
    services = Services(
        config=config, apps=apps, releases=releases, events=events, keys=keys,
        deployer=deployer, runtime=runtime, ssh_command=default_ssh_command(config),
        proxy=proxy, certificates=certificates, firewall=_firewall(config),
        version=installed_version(), history=history, limits=limits, audit=AuditStore(db),
    )
    services.addons = build_addons(config, db, client, services.config_service(), apps, events)
    services.backups = build_backups(config, services.addons, db, events)
    services.app_instances = DeployedInstances(deployer, apps, releases)
    services.backup_scheduler = BackupScheduler(services.backups)
    services.server_backups = ServerBackups(
        data_dir=config.paths.data_dir, config_file=config.source, db=db, apps=apps,
        addons=services.addons, backups=services.backups, version=services.version,
        restart_agent=lambda: os.kill(os.getpid(), signal.SIGHUP))  # see _handle_signals
    reconciler = Reconciler(apps, releases, runtime, rollout, deployer, events,
                            builds=config.paths.builds, oom=oom_watch)
    engine_events = EngineEvents(client, runtime.installation)
    return Agent(db, listeners, proxy, services, reconciler, certificates, access_log,
                 engine_events, oom_watch)


def _docker_client(url: str) -> docker.DockerClient:
    try:
        return docker.DockerClient(base_url=url)
    except docker.errors.DockerException as exc:
        raise BerthError(f"cannot reach the Docker engine at {url} ({_root_cause(exc)}); "
                         "is dockerd running?") from None


def _root_cause(exc: BaseException) -> str:
    """The innermost OS error's words (under docker-py's and requests' wrappers)."""
    reason = str(exc)
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        for arg in (seen, *seen.args):
            if isinstance(arg, OSError) and arg.strerror:
                reason = arg.strerror
        seen = seen.__cause__ or seen.__context__
    return reason


def _certificate_manager(config: Config, db: Database, proxy: Proxy) -> CertificateManager:
    """Always present: with acme.enabled = false it serves custom certificates only."""
    return CertificateManager(config.acme, config.paths.certs, db, proxy.challenges,
                              proxy.certificates)


def _firewall(config: Config) -> FirewallService:
    """The firewall service; the proxy's own ports are always among the open web ports."""
    proxy_ports = {p for p in (config.proxy.http_port, config.proxy.https_port) if p}
    web_ports = tuple(sorted({*config.firewall.web_ports, *proxy_ports}))
    return FirewallService(replace(config.firewall, web_ports=web_ports))


async def serve(config: Config) -> Outcome:
    try:
        agent = await build_agent(config)
    except (BerthError, OSError) as exc:  # OSError: the data or log directory, say
        log.error("cannot start: %s", exc)
        return Outcome(1)
    stop, restart = _handle_signals()
    services = agent.services
    api = build_api(services)
    # log_config=None: uvicorn's warnings reach the agent's own handler (--log-file)
    # instead of a stderr handler of uvicorn's.
    server = _QuietSignalsServer(uvicorn.Config(
        api, log_level="warning", lifespan="off", timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT),
        log_config=None, ws="websockets-sansio",  # `berth run` from a terminal
    ))
    tasks: list[asyncio.Task[Any]] = []
    try:
        await _start_services(agent)
        tasks.append(asyncio.create_task(
            agent.reconciler.run_periodically(RECONCILE_INTERVAL), name="reconciler"))
        if services.addons is not None:
            tasks.append(asyncio.create_task(
                services.addons.run_periodically(RECONCILE_INTERVAL), name="addons"))
        if services.firewall is not None and config.firewall.enabled:
            tasks.append(asyncio.create_task(
                services.firewall.follow_sshd_periodically(), name="firewall-sshd"))
        if services.backup_scheduler is not None:
            tasks.append(asyncio.create_task(
                services.backup_scheduler.run_periodically(), name="backup-schedules"))
        # Before deaths are followed: they may be OOM kills.
        agent.oom_watch.start(on_kill=agent.reconciler.noticed_oom)
        tasks.append(asyncio.create_task(
            agent.reconciler.follow(agent.engine_events.deaths()), name="engine-events"))
        tasks.append(asyncio.create_task(
            server.serve(sockets=[control_socket(config)]), name="control-api"))
        log.info("agent ready http=%s https=%s socket=%s", agent.proxy.http_port,
                 agent.proxy.https_port, config.paths.control_socket)
        await _wait_for_stop(stop, tasks)
    finally:
        log.info("restarting in place" if restart.is_set() else "shutting down")
        server.should_exit = True
        await stop_in_order(_stop_steps(agent, tasks, api.state.background_tasks),
                            StopDeadline(STOP_BUDGET, min(config.deploy.drain_timeout, DRAIN_SHARE)))
        await agent.access_log.close()
        agent.db.close()
        config.paths.control_socket.unlink(missing_ok=True)
    if restart.is_set():
        return Outcome(0, restart_with=agent.listeners)
    agent.listeners.close()
    return Outcome(0)


def _handle_signals() -> tuple[asyncio.Event, asyncio.Event]:
    """(stop, restart): SIGTERM and SIGINT set stop; SIGHUP sets both (restart in place)."""
    stop, restart = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def restart_in_place() -> None:
        restart.set()
        stop.set()

    loop.add_signal_handler(signal.SIGHUP, restart_in_place)
    return stop, restart


async def _start_services(agent: Agent) -> None:
    """Firewall, then routes and containers, then keys and certificates."""
    services = agent.services
    config = services.config
    if services.firewall is not None:  # applied, or (off) nothing is loaded at boot
        await services.firewall.start()
    await agent.reconciler.boot()
    services.key_service().sync()
    if services.addons is not None:
        try:
            await services.addons.reconcile()
        except BerthError as exc:  # the engine's listing: the periodic pass retries
            log.error("add-ons not reconciled at start: %s", exc)
    # Pushes to existing apps go straight to git; hooks follow ssh.command from here.
    boot.restore_repos(services.apps, services.events, services.app_service())
    await agent.certificates.start()
    boot.restore_certificates(agent.certificates, services.apps, services.events,
                              services.deployer, config.deploy.domain)
    await agent.proxy.routes_restored()  # connections waiting in the backlog are served


async def _wait_for_stop(stop: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
    """Until a signal, or until a core task dies (which is a bug worth stopping for)."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            log.error("core task %s died", task.get_name(), exc_info=task.exception())


def _stop_steps(agent: Agent, tasks: list[asyncio.Task[Any]],
                operations: set[asyncio.Task[Any]]) -> StopSteps:
    """The agent's stop, step by step (see `agent.shutdown`)."""
    services, config = agent.services, agent.services.config
    closers: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("the OOM watch", lambda: asyncio.to_thread(agent.oom_watch.close)),
        ("the certificate manager", agent.certificates.stop),
    ]
    if services.firewall is not None:
        closers.append(("the firewall", services.firewall.aclose))
    return StopSteps(tasks, operations, services.deployer.settled, agent.proxy.stop,
                     config.deploy.drain_timeout,
                     drain_slack=config.proxy.shutdown_idle_timeout + 1.0, closers=closers)
