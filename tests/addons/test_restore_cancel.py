"""A restore cancelled at any step (the agent stopping, say) ends as it began: the redis
add-on started on its previous files, the app's instances started again. Fakes for the
engine and the app; real files and real threads. No Docker."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.addons import persistence
from agent.addons.containers import AddonLayout
from agent.addons.model import Addon, new_password
from agent.backups import redisrestore, restore
from agent.deploy.output import DeployOutput
from tests.deploy.fakes import lines


@dataclass(frozen=True)
class Limits:
    stop_timeout: float = 5
    command_timeout: float = 5
    restore_timeout: float = 5


class Engine:
    """The add-on's container: its stops and starts recorded; a stop may be held."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stopping, self.let_stop = asyncio.Event(), asyncio.Event()
        self.let_stop.set()

    async def stop(self, container: str, timeout: float) -> None:
        self.calls.append("stop")
        self.stopping.set()
        await self.let_stop.wait()

    async def start(self, container: str) -> None:
        self.calls.append("start")


class Addons:
    """What a redis restore needs of the add-on service, over one data directory."""

    def __init__(self, root: Path) -> None:
        self.root, self.engine, self.settings = root, Engine(), Limits()

    def layout(self, addon: Addon) -> AddonLayout:
        return AddonLayout(self.root)

    @asynccontextmanager
    async def quiet(self, addon: Addon) -> AsyncIterator[None]:
        yield

    async def wait_ready(self, addon: Addon) -> None:
        raise AssertionError("a cancelled restore never gets this far")


@pytest.fixture
def addons(tmp_path: Path) -> Addons:
    """An add-on whose data is an RDB and an AOF directory, and a backup beside it."""
    data = tmp_path / "addon" / "data"
    (data / "appendonlydir").mkdir(parents=True)
    (data / "appendonlydir" / "appendonly.aof.1.incr.aof").write_text("previous aof")
    (data / persistence.RDB_NAME).write_text("previous rdb")
    (tmp_path / "b1.rdb").write_text("backup rdb")
    return Addons(tmp_path / "addon")


def redis_addon() -> Addon:
    return Addon(app="cache", name="redis", kind="redis", version="7", image="redis:7",
                 variable="REDIS_URL", password=new_password(), created_at=1.0)


def files_of(data: Path) -> dict[str, str]:
    return {str(p.relative_to(data)): p.read_text()
            for p in sorted(data.rglob("*")) if p.is_file()}


PREVIOUS = {"appendonlydir/appendonly.aof.1.incr.aof": "previous aof",
            "dump.rdb": "previous rdb"}


async def test_cancelled_while_the_backup_is_copied_the_copy_ends_before_the_rollback(
        addons: Addons, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy runs in a thread a cancellation does not stop: the previous files are put
    back only once it has ended, so its rename cannot land over them."""
    copying, let_go, copied = threading.Event(), threading.Event(), threading.Event()
    real_copy = shutil.copyfile

    def slow_copy(source: Path, target: Path) -> None:
        copying.set()
        try:
            assert let_go.wait(10)
            real_copy(source, target)
        finally:
            copied.set()

    monkeypatch.setattr(shutil, "copyfile", slow_copy)  # as redisrestore calls it
    task = asyncio.create_task(redisrestore.restore_rdb(
        addons, redis_addon(), addons.root.parent / "b1.rdb"))  # type: ignore[arg-type]
    assert await asyncio.to_thread(copying.wait, 10)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done and addons.engine.calls == ["stop"]  # no rollback under the copy
    let_go.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert await asyncio.to_thread(copied.wait, 10)
    data = addons.root / "data"
    assert files_of(data) == PREVIOUS
    assert addons.engine.calls == ["stop", "stop", "start"]
    assert persistence.conf_has_aof(AddonLayout(addons.root))


async def test_cancelled_while_redis_stops_it_is_started_on_its_untouched_files(
        addons: Addons) -> None:
    addons.engine.let_stop.clear()
    task = asyncio.create_task(redisrestore.restore_rdb(
        addons, redis_addon(), addons.root.parent / "b1.rdb"))  # type: ignore[arg-type]
    await asyncio.wait_for(addons.engine.stopping.wait(), 10)
    task.cancel()
    await asyncio.sleep(0)
    addons.engine.let_stop.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert files_of(addons.root / "data") == PREVIOUS
    assert addons.engine.calls[-1] == "start"


class SlowStop:
    """An app's instances whose stop waits to be let go; starts and the release recorded."""

    def __init__(self) -> None:
        self.stopping, self.let_go = asyncio.Event(), asyncio.Event()
        self.calls: list[str] = []

    @asynccontextmanager
    async def hold(self, app: str, out: DeployOutput) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.calls.append("released")

    def running(self, app: str) -> bool:
        return True

    async def stop(self, app: str, out: DeployOutput) -> None:
        self.calls.append("stopping")
        self.stopping.set()
        await self.let_go.wait()

    async def start(self, app: str, out: DeployOutput) -> None:
        self.calls.append("started")


async def test_a_restore_cancelled_while_the_app_stops_starts_it_before_letting_it_go(
        ) -> None:
    instances = SlowStop()
    entered = asyncio.Event()

    async def a_restore() -> None:
        async with restore._app_held_stopped(instances, "shop", lines()[0]):
            entered.set()

    task = asyncio.create_task(a_restore())
    await asyncio.wait_for(instances.stopping.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not entered.is_set()
    assert instances.calls == ["stopping", "started", "released"]
