"""Random sequences of apps:create/destroy, deploys, rollbacks, ps:stop/start,
domains:add/remove, config changes, rows an older Berth may have left, and agent
restarts (while the agent is down, an app's instances may die for good, or its live
release's row become unreadable), against the real proxy and the real boot path: the
start-up always completes (an app it cannot restore is skipped, with an event saying
so), every app is wanted by the certificate manager on its default domain and its own
custom ones, and every app with a live release answers (a real HTTP request through the
proxy reaches its own instance; 503 while it is stopped) on each of those names, while
a destroyed app's or a removed domain's name answers 404. A change refused with an
error leaves every name answering as it did before it.

The engine is the deploy tests' fake one (tests/deploy/fakes.py), kept across agent
restarts as Docker keeps containers: its web instances are real HTTP servers on
loopback, each answering with its app's name. Each agent start builds a new proxy,
roll-out, deployer and reconciler over the same database, as a restarted process does.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.api.services import Services
from agent.certs.manager import CertificateManager
from agent.certs.state import SCHEMA as CERTIFICATES_SCHEMA
from agent.config import AcmeSettings, Config, DeploySettings, SshSettings
from agent.deploy.orchestrator import Deployer
from agent.deploy.output import DeployOutput
from agent.deploy.reconciler import Reconciler
from agent.deploy.rollout import Rollout
from agent.errors import BerthError
from agent.paths import PathSettings
from agent.proxy import Proxy, ProxySettings
from agent.services import boot
from agent.services.configvars import ConfigChange
from agent.services.domains import reserved_for
from agent.store.apps import AppStore
from agent.store.audit import AuditStore
from agent.store.db import Database, UnreadableRow
from agent.store.events import EventStore
from agent.store.keys import KeyStore
from agent.store.releases import ReleaseStore
from agent.store.schema import SCHEMA
from tests.deploy.fakes import FakeBuilder, FakeRuntime, answer

DOMAIN = "apps.example.test"
APPS = ["a", "b", "c"]
DOMAINS = ["a.apps.example.test", "b.apps.example.test", DOMAIN, "x.a.apps.example.test",
           "shop.example.com", "www.example.com"]
# Every name a request is sent to: each app's default domain and every custom one.
NAMES = sorted({*(f"{app}.{DOMAIN}" for app in APPS), *DOMAINS})
DEPLOY = DeploySettings(domain=DOMAIN, health_interval=0.05, health_timeout=10,
                        settle_time=0.01, drain_timeout=2, stop_timeout=1)
PROXY = ProxySettings(listen="127.0.0.1", http_port=0, https_port=None, access_log=False,
                      shutdown_idle_timeout=0.1)
REQUEST_TIMEOUT = 10.0

def deploys() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just("deploy"), st.sampled_from(APPS))


def restarts() -> st.SearchStrategy[tuple[Any, ...]]:
    """An agent restart; while it is down, one app's instances may die for good
    ("crash") or its live release's row may become unreadable ("break")."""
    damage = st.tuples(st.sampled_from(["crash", "break"]), st.sampled_from(APPS))
    return st.tuples(st.just("restart"), st.one_of(st.none(), damage))


# Deploys and restarts are drawn twice as often as the rest: what a start restores is
# what matters, and an app only answers once deployed.
operations = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(APPS)),
    st.tuples(st.just("destroy"), st.sampled_from(APPS)),
    deploys(), deploys(), restarts(), restarts(),
    st.tuples(st.just("add"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("remove"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("old_row"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("config"), st.sampled_from(APPS), st.booleans()),
    st.tuples(st.sampled_from(["rollback", "stop", "start"]), st.sampled_from(APPS)),
), min_size=4, max_size=25)


class Engine(FakeRuntime):
    """The container engine outside the agent: its instances outlive an agent restart.
    Each web instance answers every request with its app's name."""

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        owners = [c.spec.labels.get("berth.app", "") for c in self.containers_by_id.values()
                  if c.spec.publish_port == port]
        await answer(reader, writer, 200 if owners else 500, "".join(owners).encode())

    async def crash(self, app: str) -> None:
        """The app's instances die and their restart policy does not bring them back."""
        for container in self.containers_by_id.values():
            if container.spec.labels.get("berth.app") == app:
                container.state = "exited"
                if container.server is not None:
                    container.server.close()
                    await container.server.wait_closed()


class Agent:
    """What one agent process holds, over the database in `root` (opened afresh) and
    the engine that outlives it; `start` restores as the daemon's start does."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root, self.engine = root, engine
        self.stopped = False
        config = Config(paths=PathSettings(data_dir=root / "data"), deploy=DEPLOY,
                        ssh=SshSettings(user="root", authorized_keys=root / "authorized_keys"))
        self.db = db = Database.open(root / "berth.db", [SCHEMA, CERTIFICATES_SCHEMA])
        self.proxy = proxy = Proxy(PROXY)
        apps, releases, events = AppStore(db), ReleaseStore(db), EventStore(db)
        rollout = Rollout(engine, proxy, config.deploy)
        self.manager = CertificateManager(AcmeSettings(enabled=False), root / "certs", db,
                                          proxy.challenges, proxy.certificates)
        deployer = Deployer(config, apps, releases, events, engine, FakeBuilder(engine),
                            rollout, certificates=self.manager,
                            tls_hosts=proxy.certificates.names)
        self.services = Services(config=config, apps=apps, releases=releases, events=events,
                                 keys=KeyStore(db), deployer=deployer, runtime=engine,
                                 ssh_command="berth", audit=AuditStore(db))
        self.reconciler = Reconciler(apps, releases, engine, rollout, deployer, events)

    async def start(self) -> None:
        s = self.services
        await self.proxy.start(restoring=True)
        await self.reconciler.boot()
        boot.restore_repos(s.apps, s.events, s.app_service())
        await self.manager.start()
        boot.restore_certificates(self.manager, s.apps, s.events, s.deployer, DOMAIN)
        await self.proxy.routes_restored()

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.services.deployer.settled(REQUEST_TIMEOUT)
        await self.manager.stop()
        await self.proxy.stop(1)
        self.db.close()


async def restart(agent: Agent, damage: tuple[str, str] | None) -> Agent:
    """Stop `agent`, do `damage` while it is down, and start a new one; the start never
    raises, whatever the state."""
    await agent.stop()
    broken = 0
    if damage is not None and damage[0] == "crash":
        await agent.engine.crash(damage[1])
    elif damage is not None:  # a hand edit or a bug: the live release cannot be read
        with closing(sqlite3.connect(agent.root / "berth.db")) as db, db:
            broken = db.execute("UPDATE releases SET processes = '{' "
                                "WHERE app = ? AND state = 'live'", (damage[1],)).rowcount
    agent = Agent(agent.root, agent.engine)
    await agent.start()
    if damage is not None and broken:  # skipped, and the app's events say so
        assert boot.SKIPPED in [e.kind for e in agent.services.events.list(damage[1])]
    return agent


async def apply(s: Services, op: tuple[Any, ...], source: Path, push: int) -> None:
    kind, *args = op
    if kind == "create":
        s.app_service().create(args[0])
    elif kind == "destroy":
        await s.app_service().destroy(args[0], DeployOutput())
    elif kind == "deploy":  # a push (the first creates the app); the fake builder is quick
        if args[0] not in s.apps.names():
            s.app_service().create(args[0])
        await s.deployer.deploy_push(args[0], f"{push:040x}", source, DeployOutput())
    elif kind == "add":
        await s.domain_service().add(args[0], args[1])
    elif kind == "remove":
        await s.domain_service().remove(args[0], args[1])
    elif kind == "old_row":  # written before names under deploy.domain were reserved
        s.apps.add_domain(args[0], args[1])
    elif kind == "config":
        await s.config_service().change(args[0], ConfigChange({"K": "v"}), DeployOutput(),
                                        restart=args[1])
    elif kind == "rollback":
        await s.deployer.rollback(args[0], None, DeployOutput())
    elif kind == "stop":  # ps:stop
        await s.deployer.stop(args[0], DeployOutput())
    elif kind == "start":  # ps:start
        await s.deployer.start(args[0], DeployOutput())


def custom_domains(s: Services, app: str) -> list[str]:
    return [d for d in s.apps.domains(app) if reserved_for(d, DOMAIN) is None]


async def get(port: int, host: str) -> tuple[int, str]:
    """One request through the proxy: the status and the body."""
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()

    raw = await asyncio.wait_for(exchange(), REQUEST_TIMEOUT)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


Answers = dict[str, tuple[int, str]]


async def check_answers(agent: Agent, unsettled: frozenset[str] = frozenset()) -> Answers:
    """Every name of an app with a live release reaches that app (503 while the app is
    stopped); every other is 404 (save `unsettled` ones: rows written behind the running agent's back, and the names
    of an app whose live release cannot be read, which a start skips). Returns what
    each name answered."""
    s = agent.services
    owners: dict[str, str] = {}
    stopped: set[str] = set()
    for app in s.apps.names():
        names = [f"{app}.{DOMAIN}", *custom_domains(s, app)]
        try:
            live = s.releases.live(app)
        except UnreadableRow:
            unsettled |= set(names)
            continue
        if live is not None:
            owners.update(dict.fromkeys(names, app))
            if s.apps.get(app).stopped:
                stopped.update(names)
    answers = {name: await get(agent.proxy.http_port, name) for name in NAMES}
    for name in sorted(set(NAMES) - unsettled):
        status, body = answers[name]
        if name in stopped:
            assert status == 503, (name, status, body)
        elif name in owners:
            assert (status, body) == (200, owners[name]), name
        else:
            assert status == 404, (name, status, body)
    return answers


def check_certificates(agent: Agent) -> None:
    s = agent.services
    for app in s.apps.names():
        wanted = sorted(status.domain for status in agent.manager.status(app))
        assert wanted == sorted({f"{app}.{DOMAIN}", *custom_domains(s, app)})


async def scenario(root: Path, ops: list[tuple[Any, ...]]) -> None:
    engine = Engine()
    source = root / "src"
    source.mkdir()
    (source / "Procfile").write_text("web: gunicorn app\n")
    pushes = itertools.count(1)
    unsettled: set[str] = set()  # old rows written since the last start
    agent = Agent(root, engine)
    try:
        await agent.start()
        answers = await check_answers(agent)
        for op in ops:
            if op[0] == "restart":
                agent = await restart(agent, op[1])
                unsettled.clear()
                check_certificates(agent)
                answers = await check_answers(agent)
                continue
            failed = False
            try:
                await apply(agent.services, op, source, next(pushes))
            except BerthError:
                failed = True  # refused with one line
            if op[0] == "old_row" and not failed:
                unsettled.add(op[2])
            before, answers = answers, await check_answers(agent, frozenset(unsettled))
            if failed:  # a change that fails leaves no trace
                assert answers == before, op
        agent = await restart(agent, None)
        check_certificates(agent)
        await check_answers(agent)
    finally:
        await agent.stop()
        await engine.close()


@settings(max_examples=50, deadline=None)
@given(operations)
@example([("create", "a"), ("create", "b"), ("old_row", "b", "a.apps.example.test"),
          ("add", "b", "shop.example.com"), ("restart", None), ("destroy", "a"),
          ("restart", None), ("create", "a")])
@example([("deploy", "a"), ("deploy", "b"), ("add", "b", "shop.example.com"),
          ("restart", None), ("remove", "b", "shop.example.com"), ("config", "a", True),
          ("restart", ("crash", "a")), ("destroy", "b"), ("restart", None),
          ("add", "a", "shop.example.com"), ("restart", ("crash", "a"))])
@example([("deploy", "a"), ("deploy", "b"), ("add", "a", "shop.example.com"),
          ("restart", ("break", "a")), ("deploy", "b"), ("config", "b", True),
          ("deploy", "a"), ("restart", None), ("destroy", "a"), ("restart", None)])
@example([("deploy", "a"), ("config", "a", True), ("rollback", "a"), ("stop", "a"),
          ("deploy", "b"), ("restart", None), ("start", "a"), ("restart", None),
          ("stop", "a"), ("restart", ("crash", "a")), ("start", "a"), ("rollback", "a")])
def test_any_history_of_changes_and_restarts_starts_and_serves(
        ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(scenario(Path(root), ops))
