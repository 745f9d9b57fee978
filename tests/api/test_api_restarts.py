"""Random sequences of apps:create/destroy, domains:add/remove, config changes, rows an
older Berth may have left, and agent restarts: the start-up always completes, and every
app is wanted by the certificate manager on its default domain and its own custom ones."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.api.services import Services
from agent.certs.manager import CertificateManager
from agent.certs.state import SCHEMA as CERTIFICATES_SCHEMA
from agent.config import AcmeSettings
from agent.deploy.output import DeployOutput
from agent.deploy.reconciler import Reconciler
from agent.errors import BerthError
from agent.proxy.certs import CertificateStore
from agent.proxy.challenges import ChallengeTokens
from agent.services import boot
from agent.services.configvars import ConfigChange
from agent.services.domains import reserved_for
from agent.store.schema import SCHEMA
from conftest import make_services

DOMAIN = "apps.example.test"
APPS = ["a", "b", "c"]
DOMAINS = ["a.apps.example.test", "b.apps.example.test", DOMAIN, "x.a.apps.example.test",
           "shop.example.com", "www.example.com"]

operations = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(APPS)),
    st.tuples(st.just("destroy"), st.sampled_from(APPS)),
    st.tuples(st.just("add"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("remove"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("old_row"), st.sampled_from(APPS), st.sampled_from(DOMAINS)),
    st.tuples(st.just("config"), st.sampled_from(APPS), st.booleans()),
    st.tuples(st.just("restart"),),
), max_size=25)


class Agent:
    """The parts a start restores, over the database in `root` (opened afresh)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.services, self.db = make_services(
            root, certificates=None, schemas=(SCHEMA, CERTIFICATES_SCHEMA))
        self.manager = CertificateManager(AcmeSettings(enabled=False), root / "certs",
                                          self.db, ChallengeTokens(), CertificateStore())
        self.services.deployer._certificates = self.manager  # the daemon passes it in

    async def start(self) -> None:
        s = self.services
        await Reconciler(s.apps, s.releases, s.runtime, s.deployer._rollout, s.deployer,
                         s.events).boot()
        boot.restore_repos(s.apps, s.events, s.app_service())
        await self.manager.start()
        boot.restore_certificates(self.manager, s.apps, s.events, s.deployer, DOMAIN)

    async def stop(self) -> None:
        await self.manager.stop()
        self.db.close()


async def apply(s: Services, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "create":
        s.app_service().create(args[0])
    elif kind == "destroy":
        await s.app_service().destroy(args[0], DeployOutput())
    elif kind == "add":
        await s.domain_service().add(args[0], args[1])
    elif kind == "remove":
        await s.domain_service().remove(args[0], args[1])
    elif kind == "old_row":  # written before names under deploy.domain were reserved
        s.apps.add_domain(args[0], args[1])
    elif kind == "config":
        await s.config_service().change(args[0], ConfigChange({"K": "v"}), DeployOutput(),
                                        restart=args[1])


def wanted(agent: Agent, app: str) -> list[str]:
    return sorted(status.domain for status in agent.manager.status(app))


async def scenario(root: Path, ops: list[tuple[Any, ...]]) -> None:
    agent = Agent(root)
    await agent.start()
    try:
        for op in ops:
            if op[0] == "restart":
                await agent.stop()
                agent = Agent(root)
                await agent.start()  # never raises, whatever the state
                continue
            try:
                await apply(agent.services, op)
            except BerthError:
                pass  # refused with one line; what matters is what a start makes of it
        await agent.stop()
        agent = Agent(root)
        await agent.start()
        s = agent.services
        for app in s.apps.names():
            custom = [d for d in s.apps.domains(app) if reserved_for(d, DOMAIN) is None]
            assert wanted(agent, app) == sorted({f"{app}.{DOMAIN}", *custom})
    finally:
        await agent.stop()


@settings(max_examples=60, deadline=None)
@given(operations)
@example([("create", "a"), ("create", "b"), ("old_row", "b", "a.apps.example.test"),
          ("add", "b", "shop.example.com"), ("restart",), ("destroy", "a"), ("restart",),
          ("create", "a")])
def test_any_history_of_changes_and_restarts_starts(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(scenario(Path(root), ops))
