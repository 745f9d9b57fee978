"""Resource limits: parsing, defaults, what the engine is given, and their store."""

from __future__ import annotations

import pytest

from agent.config import DeploySettings
from agent.limits import InvalidLimit, Limits, default_limits, engine_limits, parse_limits
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.limits import SCHEMA as LIMITS_SCHEMA
from agent.store.limits import LimitStore
from agent.store.schema import SCHEMA

MIB = 1024 * 1024


def test_limits_are_parsed_and_cleared() -> None:
    assert parse_limits(["memory=512m", "cpus=1.5", "pids=256"]) == (
        Limits(512 * MIB, 1.5, 256), [])
    assert parse_limits(["memory=2G", "cpus="]) == (Limits(memory=2048 * MIB), ["cpus"])


@pytest.mark.parametrize("pair", [
    "memory=5m", "memory=lots", "memory=-1m", "memory=99999999g", "cpus=0", "cpus=x",
    "cpus=1e9", "pids=3", "pids=1.5", "swap=1g", "memory", "",
])
def test_bad_limits_are_refused_in_one_line(pair: str) -> None:
    with pytest.raises(InvalidLimit) as refused:
        parse_limits([pair])
    assert "\n" not in str(refused.value) and str(refused.value).startswith("invalid limit")


def test_unset_limits_come_from_the_defaults() -> None:
    defaults = default_limits(DeploySettings(memory_limit="1g", cpu_limit=1.0, pids_limit=1024))
    assert Limits(memory=512 * MIB).over(defaults) == Limits(512 * MIB, 1.0, 1024)
    assert Limits().over(defaults).describe() == "memory=1g cpus=1 pids=1024"
    none = default_limits(DeploySettings(memory_limit="", cpu_limit=0, pids_limit=0))
    assert Limits().over(none).describe() == "unlimited"


def test_changes_keep_what_they_do_not_name() -> None:
    before = Limits(512 * MIB, 2.0, 100)
    assert before.with_changes(Limits(cpus=0.5), ["pids"]) == Limits(512 * MIB, 0.5, None)


def test_the_engine_gets_memory_without_swap_cpus_and_pids() -> None:
    assert engine_limits(Limits(64 * MIB, 0.5, 100)) == {
        "mem_limit": 64 * MIB, "memswap_limit": 64 * MIB, "nano_cpus": 500_000_000,
        "pids_limit": 100}
    assert engine_limits(Limits()) == {}


def test_the_store_keeps_each_process_types_limits_until_the_app_goes(tmp_path) -> None:
    db = Database.open(tmp_path / "berth.db", [SCHEMA, LIMITS_SCHEMA])
    try:
        apps, store = AppStore(db), LimitStore(db)
        apps.create("shop")
        store.save("shop", "web", Limits(memory=256 * MIB))
        store.save("shop", "run", Limits(pids=64))
        resolve = store.resolver(Limits(1024 * MIB, 1.0, 1024))
        assert resolve("shop", "web") == Limits(256 * MIB, 1.0, 1024)
        assert resolve("shop", "worker") == Limits(1024 * MIB, 1.0, 1024)
        assert resolve("shop", "run") == Limits(1024 * MIB, 1.0, 64)
        store.save("shop", "run", Limits())  # all cleared: back to the defaults
        assert set(store.of("shop")) == {"web"}
        apps.delete("shop")
        assert store.of("shop") == {}
    finally:
        db.close()
