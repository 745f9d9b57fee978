"""Writing a redis add-on's configuration: a crash or a refusing disk midway leaves the
old file whole (its `requirepass` with it), never a truncated one. No Docker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.addons import containers, persistence
from agent.addons.containers import AddonLayout
from agent.addons.model import Addon, new_password


def redis_addon() -> Addon:
    return Addon(app="cache-1", name="redis", kind="redis", version="7", image="redis:7",
                 variable="REDIS_URL", password=new_password(), created_at=1.0)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Addon, AddonLayout, str]:
    addon, layout = redis_addon(), AddonLayout(tmp_path)
    persistence.write_conf(addon, layout, appendonly=True)
    return addon, layout, layout.redis_conf.read_text()


def test_the_configuration_is_written_whole_and_readable_by_redis(
        written: tuple[Addon, AddonLayout, str]) -> None:
    addon, layout, before = written
    assert before == containers.redis_conf(addon, appendonly=True)
    assert f"requirepass {addon.password}" in before
    persistence.write_conf(addon, layout, appendonly=False)
    assert layout.redis_conf.read_text() == containers.redis_conf(addon, appendonly=False)
    assert os.stat(layout.redis_conf).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in layout.root.iterdir()) == ["redis.conf"]


def test_a_crash_while_writing_leaves_the_old_configuration(
        written: tuple[Addon, AddonLayout, str], monkeypatch: pytest.MonkeyPatch) -> None:
    addon, layout, before = written

    def crash(addon: Addon, appendonly: bool = True) -> str:
        raise KeyboardInterrupt  # the process ends here, as a crash would end it

    monkeypatch.setattr(persistence.containers, "redis_conf", crash)
    with pytest.raises(KeyboardInterrupt):
        persistence.write_conf(addon, layout, appendonly=False)
    assert layout.redis_conf.read_text() == before


def test_a_disk_refusing_the_flush_leaves_the_old_configuration(
        written: tuple[Addon, AddonLayout, str], monkeypatch: pytest.MonkeyPatch) -> None:
    addon, layout, before = written

    def refuse(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(persistence.os, "fsync", refuse)
    with pytest.raises(OSError, match="Input/output"):
        persistence.write_conf(addon, layout, appendonly=False)
    assert layout.redis_conf.read_text() == before
    assert sorted(p.name for p in layout.root.iterdir()) == ["redis.conf"]
