"""The reconciler and an add-on's destroy or create running at the same time: the
reconciler never brings back an add-on being destroyed (a container and a data
directory left behind, which a later add-on of the same name would start on) and never
removes one being created. A hand-written engine lets each test hold the reconciler in
the middle of its work; the stores are real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.addons.model import Addon
from agent.addons.service import AddonService
from agent.addons.settings import AddonSettings
from agent.addons.store import SCHEMA as ADDONS_SCHEMA
from agent.addons.store import AddonStore
from agent.deploy.output import DeployOutput
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.schema import SCHEMA

SETTINGS = AddonSettings(postgres_image="postgres:{version}", redis_image="redis:{version}",
                         postgres_version="15", redis_version="7", start_timeout=5.0,
                         stop_timeout=1.0)


class HeldEngine:
    """Containers as a dict of states; one call (`hold`: state or names) can be held at
    a gate, as an engine answering slowly holds the reconciler; changes are recorded."""

    installation = "test"

    def __init__(self, hold: str) -> None:
        self.containers: dict[str, tuple[str, str, str]] = {}  # name -> (state, app, addon)
        self.calls: list[str] = []
        self.hold = hold
        self.gate = asyncio.Event()
        self.held = asyncio.Event()

    async def _wait(self, call: str) -> None:
        if call == self.hold and not self.gate.is_set():
            self.held.set()
            await self.gate.wait()

    async def state(self, name: str) -> str | None:
        await self._wait("state")
        found = self.containers.get(name)
        return found[0] if found else None

    async def names(self) -> list[tuple[str, str, str]]:
        await self._wait("names")
        return [(name, app, addon) for name, (_, app, addon) in self.containers.items()]

    async def ensure_network(self, app: str) -> str:
        return f"berth-{app}"

    async def run(self, spec: Any) -> None:
        self.calls.append(f"run {spec.name}")
        self.containers[spec.name] = ("running", spec.labels["berth.addon.app"],
                                      spec.labels["berth.addon.name"])

    async def start(self, name: str) -> None:
        self.calls.append(f"start {name}")

    async def stop(self, name: str, timeout: float) -> None:
        self.calls.append(f"stop {name}")

    async def remove(self, name: str) -> None:
        self.calls.append(f"remove {name}")
        self.containers.pop(name, None)

    async def exec(self, name: str, argv: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used here")


class NoConfig:
    async def change(self, app: str, change: Any, out: DeployOutput, *,
                     restart: bool = True) -> None:
        return None


def service(tmp_path: Path, hold: str) -> tuple[AddonService, HeldEngine, AddonStore]:
    db = Database.open(tmp_path / "berth.db", [SCHEMA, ADDONS_SCHEMA])
    apps, store, engine = AppStore(db), AddonStore(db), HeldEngine(hold)
    apps.create("shop")
    addons = AddonService(settings=SETTINGS, data_dir=tmp_path / "data", restart_policy="no",
                          store=store, engine=engine, apps=apps,  # type: ignore[arg-type]
                          events=EventStore(db), config=NoConfig())
    return addons, engine, store


def stored_addon() -> Addon:
    return Addon(app="shop", name="redis", kind="redis", version="7", image="redis:7",
                 variable="REDIS_URL", password="pw", created_at=0.0)


def test_a_destroy_during_a_reconcile_leaves_nothing_behind(tmp_path: Path) -> None:
    addons, engine, store = service(tmp_path, hold="state")
    addon = stored_addon()
    store.add(addon)
    addons.layout(addon).data.mkdir(parents=True)
    engine.containers[addon.container] = ("running", "shop", "redis")

    async def scenario() -> None:
        reconcile = asyncio.create_task(addons.reconcile())
        await asyncio.wait_for(engine.held.wait(), 5)  # it saw the add-on stored
        destroy = asyncio.create_task(addons.remove(addon, DeployOutput()))
        await asyncio.sleep(0.1)
        engine.gate.set()
        await asyncio.wait_for(asyncio.gather(reconcile, destroy), 10)

    asyncio.run(scenario())
    assert store.of_app("shop") == []
    assert engine.containers == {} and not addons.layout(addon).root.exists()
    assert not any(call.startswith(("run", "start")) for call in engine.calls), engine.calls


def test_a_create_during_a_reconcile_keeps_its_container(tmp_path: Path) -> None:
    addons, engine, store = service(tmp_path, hold="names")
    addon = stored_addon()

    async def ready(_: Addon) -> None:
        return None

    addons.wait_ready = ready  # type: ignore[method-assign]

    async def scenario() -> None:
        # The reconciler read the (empty) store, then waits on the engine's list of
        # containers, which the create's new container is in by the time it answers.
        reconcile = asyncio.create_task(addons.reconcile())
        await asyncio.wait_for(engine.held.wait(), 5)
        await asyncio.wait_for(addons.start_new(addon, DeployOutput()), 5)
        engine.gate.set()
        await asyncio.wait_for(reconcile, 5)

    asyncio.run(scenario())
    assert store.of_app("shop") == [addon]
    assert addon.container in engine.containers, engine.calls
    assert f"remove {addon.container}" not in engine.calls
