"""An add-on on an image whose `timeout` is busybox's (as in the official `-alpine`
images, which cannot be pulled here: `berth-stand-in/redis:7-alpine` is the redis
stand-in with Debian's busybox as its `timeout`, tests/support/stand-in/busybox-timeout/).
It answers its ready probe, backs up and restores, and a command past its deadline is
killed there. (tests/addons/test_addon_exec_deadlines.py runs its deadlines on both
kinds of `timeout`.)"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest
from addon_world import BUSYBOX_SETTINGS, World, ensure_busybox_images

from agent.addons import engine as engine_module
from agent.addons.engine import ExecTimedOut
from agent.addons.model import Addon
from agent.backups import restore

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module", autouse=True)
def busybox_images() -> None:
    ensure_busybox_images()


def _on_busybox(w: World) -> Addon:
    w.service.settings = replace(BUSYBOX_SETTINGS, start_timeout=30.0)
    w.apps.create(w.cache)
    return asyncio.run(w.service.create(w.cache, "redis", None, None, w.out()))


def _processes(w: World, addon: Addon) -> str:
    """Every live command line in the add-on's container, one a line (zombies have
    none)."""
    return asyncio.run(w.engine.exec(addon.container, [
        "sh", "-c", 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done'],
        timeout=10)).stdout.decode()


def _gone(w: World, addon: Addon, needle: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while needle in _processes(w, addon):
        assert time.monotonic() < deadline, f"{needle!r} still runs"
        time.sleep(0.1)


def test_an_addon_on_busyboxs_timeout_answers_backs_up_and_restores(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agent.addons.engine"):
        addon = _on_busybox(world)
    assert "flavour=busybox" in caplog.text
    assert b"BusyBox" in asyncio.run(world.engine.exec(
        addon.container, ["sh", "-c", "timeout --help 2>&1"], timeout=10)).stdout
    world.redis(addon.url, "MSET", "a", "1", "b", "2")
    backup = asyncio.run(world.backups.capture(world.cache, None, world.out()))
    world.redis(addon.url, "SET", "a", "changed")
    asyncio.run(restore.restore(world.backups, world.instances, world.cache, backup.id,
                                world.out()))
    assert world.redis(addon.url, "MGET", "a", "b") == "1\n2"


def test_a_command_past_its_deadline_is_killed_by_busyboxs_timeout(world: World) -> None:
    addon = _on_busybox(world)
    started = time.monotonic()
    with pytest.raises(ExecTimedOut, match="within 1 s"):
        asyncio.run(world.engine.exec(addon.container, ["sleep", "47"], timeout=1))
    assert time.monotonic() - started < 1 + engine_module.EXEC_GRACE
    # The command, and busybox's watcher (`timeout -s KILL 1 sleep 47`), which sees its
    # command gone and ends within a second or so.
    _gone(world, addon, "sleep 47")
