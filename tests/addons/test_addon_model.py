"""Add-on names, variables and URLs (agent.addons.model), and the add-ons table."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from agent.addons.model import (
    Addon,
    AddonNotFound,
    InvalidAddon,
    check_host_name,
    check_kind,
    check_name,
    check_version,
    choose_names,
    new_password,
)
from agent.addons.settings import AddonSettings
from agent.addons.store import SCHEMA, AddonStore
from agent.errors import Conflict
from agent.store.db import Database


def addon(**changes: object) -> Addon:
    fields: dict[str, object] = dict(
        app="shop-1", name="postgres", kind="postgres", version="16", image="postgres:16",
        variable="DATABASE_URL", password=new_password(), created_at=1.0)
    fields.update(changes)
    return Addon(**fields)  # type: ignore[arg-type]


def test_first_of_a_kind_sets_the_usual_variable() -> None:
    assert choose_names("postgres", {}, None) == ("postgres", "DATABASE_URL")
    assert choose_names("redis", {"postgres": "DATABASE_URL"}, None) == ("redis", "REDIS_URL")


def test_a_second_of_a_kind_is_numbered() -> None:
    taken = {"postgres": "DATABASE_URL"}
    assert choose_names("postgres", taken, None) == ("postgres-2", "POSTGRES_2_URL")
    taken["postgres-2"] = "POSTGRES_2_URL"
    assert choose_names("postgres", taken, None) == ("postgres-3", "POSTGRES_3_URL")


def test_as_names_the_addon_and_its_variable() -> None:
    assert choose_names("postgres", {}, "ANALYTICS") == ("analytics", "ANALYTICS_URL")
    assert choose_names("redis", {}, "cache_store") == ("cache-store", "CACHE_STORE_URL")
    assert choose_names("postgres", {}, "DATABASE") == ("database", "DATABASE_URL")


@pytest.mark.parametrize("alias", ["", "1db", "a b", "x" * 31, "db;rm", "DB$"])
def test_bad_as_is_refused(alias: str) -> None:
    with pytest.raises(InvalidAddon):
        choose_names("postgres", {}, alias)


def test_taken_name_or_variable_is_refused() -> None:
    with pytest.raises(InvalidAddon, match="named analytics"):
        choose_names("postgres", {"analytics": "X_URL"}, "analytics")
    with pytest.raises(InvalidAddon, match="DATABASE_URL"):
        choose_names("postgres", {"main": "DATABASE_URL"}, "DATABASE")


def test_an_addon_whose_host_name_is_no_dns_label_is_refused() -> None:
    app, name = "a" * 30, "b" * 30  # each the longest name allowed
    with pytest.raises(InvalidAddon, match="would be 73 characters, at most 63"):
        check_host_name(app, name)
    fits = "b" * (63 - len(f"berth-addon-{app}-"))
    assert len(check_host_name(app, fits)) == 63


def test_kind_name_and_version_checks() -> None:
    assert check_kind("redis") == "redis"
    assert check_name("cache-2") == "cache-2"
    assert check_version("7.2") == "7.2"
    for bad in ("mysql", "Postgres", ""):
        with pytest.raises(InvalidAddon):
            check_kind(bad)
    for bad in ("Cache", "-x", "a/b", ""):
        with pytest.raises(InvalidAddon):
            check_name(bad)
    for bad in ("latest", "16; rm", "", "1" * 21):
        with pytest.raises(InvalidAddon):
            check_version(bad)


def test_passwords_are_long_random_and_url_safe() -> None:
    first, second = new_password(), new_password()
    assert first != second and len(first) >= 43
    assert all(c.isalnum() or c in "-_" for c in first)


def test_urls_point_at_the_container_by_name() -> None:
    pg = addon()
    parts = urlsplit(pg.url)
    assert (parts.scheme, parts.hostname, parts.port) == ("postgres", pg.container, 5432)
    assert (parts.username, parts.password, parts.path) == ("shop_1", pg.password, "/shop_1")
    redis = addon(name="redis", kind="redis", variable="REDIS_URL")
    parts = urlsplit(redis.url)
    assert (parts.scheme, parts.hostname, parts.port, parts.password) == (
        "redis", "berth-addon-shop-1-redis", 6379, redis.password)


def test_public_view_holds_no_secret() -> None:
    pg = addon()
    shown = repr(pg.public())
    assert pg.password not in shown and "url" not in pg.public()


def test_images_follow_the_settings_templates() -> None:
    settings = AddonSettings(postgres_image="local/pg:{version}")
    assert settings.image("postgres", "15") == "local/pg:15"
    assert settings.image("redis", settings.default_version("redis")) == "redis:7"


def test_store_round_trip_and_conflicts() -> None:
    store = AddonStore(Database.open(None, [SCHEMA]))
    pg = addon()
    store.add(pg)
    store.add(addon(app="other", name="redis", kind="redis", variable="REDIS_URL"))
    assert store.get("shop-1", "postgres") == pg
    assert [a.name for a in store.of_app("shop-1")] == ["postgres"]
    assert len(store.all()) == 2
    with pytest.raises(Conflict):
        store.add(pg)
    store.remove("shop-1", "postgres")
    with pytest.raises(AddonNotFound):
        store.get("shop-1", "postgres")


@pytest.mark.parametrize("name", ["cache-", "x" * 31])
def test_an_addon_name_follows_the_app_name_rule(name: str) -> None:
    """Its name ends its container's host name: no dash at the end, 30 at most."""
    with pytest.raises(InvalidAddon, match="must match"):
        check_name(name)
    with pytest.raises(InvalidAddon):
        choose_names("redis", {}, name.replace("-", "_"))
