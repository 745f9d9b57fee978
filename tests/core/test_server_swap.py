"""Swapping a staged server in: the live data and state database take the staged
content, or, when a step fails, stay exactly as they were."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.serverbackup.swap import Swap
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.schema import SCHEMA


def _world(tmp_path: Path) -> tuple[Path, Path, Database]:
    data = tmp_path / "data"
    (data / "storage/shop").mkdir(parents=True)
    (data / "storage/shop/old.txt").write_text("old")
    db = Database.open(data / "berth.db", [SCHEMA])
    AppStore(db).create("old-app")
    staged = tmp_path / "staged"
    (staged / "storage/shop").mkdir(parents=True)
    (staged / "storage/shop/new.txt").write_text("new")
    (staged / "repos/shop.git").mkdir(parents=True)
    (staged / "state").mkdir()
    source = Database.open(tmp_path / "source.db", [SCHEMA])
    AppStore(source).create("shop")
    source.copy_to(staged / "state/berth.db")
    source.close()
    return data, staged, db


def test_the_staged_data_and_database_take_the_live_ones_place(tmp_path: Path) -> None:
    data, staged, db = _world(tmp_path)
    Swap(data, staged, data / "previous", db).run("nobody-here")
    assert AppStore(db).names() == ["shop"]
    assert (data / "storage/shop/new.txt").read_text() == "new"
    assert (data / "repos/shop.git").is_dir() and (data / "addons").is_dir()
    assert (data / "previous/storage/shop/old.txt").read_text() == "old"
    kept = sqlite3.connect(data / "previous/berth.db")
    assert [r[0] for r in kept.execute("SELECT name FROM apps")] == ["old-app"]
    kept.close()


def test_a_failed_swap_leaves_the_previous_data(tmp_path: Path) -> None:
    data, staged, db = _world(tmp_path)
    (staged / "state/berth.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        Swap(data, staged, data / "previous", db).run("nobody-here")
    assert AppStore(db).names() == ["old-app"]
    assert (data / "storage/shop/old.txt").read_text() == "old"
    assert not (data / "repos").exists() and not (data / "addons").exists()
    assert (staged / "storage/shop/new.txt").read_text() == "new"
