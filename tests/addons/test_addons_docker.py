"""Add-ons on the real Docker engine: postgres over TLS and redis with a password,
reachable on the app's network under their names, brought back when they vanish."""

from __future__ import annotations

import asyncio

import pytest
from addon_world import World

from agent.addons.model import AddonNotFound
from agent.deploy.networks import app_network
from agent.errors import BerthError

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_postgres_serves_tls_with_the_generated_password(world: World) -> None:
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    url = world.apps.config(world.shop)["DATABASE_URL"]
    assert url == addon.url and addon.password in url
    query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    answer = world.client_run("psql", f"{url}?sslmode=require", "-Atc", query)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "t"
    wrong = url.replace(addon.password, "not-the-password")
    refused = world.client_run("psql", f"{wrong}?sslmode=require", "-Atc", "SELECT 1")
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr
    # The secret is in the config var only: not in what the user was shown, not in events.
    shown = "\n".join(world.lines) + repr([e.message for e in world.events.list(world.shop)])
    assert addon.password not in shown and "DATABASE_URL" in shown
    # On the app's network alone, no port published, under the server's restart policy.
    host = world.client.api.inspect_container(addon.container)
    assert list(host["NetworkSettings"]["Networks"]) == [app_network(world.shop)]
    assert not host["HostConfig"]["PortBindings"]
    assert not any((host["NetworkSettings"]["Ports"] or {}).values())  # exposed, not bound
    assert host["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    data = world.data_dir / "addons" / world.shop / "postgres" / "data"
    assert (data / "PG_VERSION").read_text().strip() == "15"
    assert oct((world.data_dir / "addons").stat().st_mode & 0o777) == "0o700"


def test_redis_needs_its_password_and_a_second_one_is_numbered(world: World) -> None:
    world.apps.create(world.cache)
    first = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    second = asyncio.run(world.service.create(world.cache, "redis", None, None, world.out()))
    config = world.apps.config(world.cache)
    assert (first.name, second.name) == ("redis", "redis-2")
    assert config["REDIS_URL"] == first.url and config["REDIS_2_URL"] == second.url
    redis = "berth-stand-in/redis:7"
    ok = world.client_run("redis-cli", "-u", first.url, "SET", "k", "v", image=redis)
    assert ok.stdout.strip() == "OK", ok.stdout + ok.stderr
    anonymous = world.client_run("redis-cli", "-h", first.container, "GET", "k", image=redis)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr


def test_a_vanished_or_stopped_addon_is_brought_back_with_its_data(world: World) -> None:
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "redis", None, "CACHE", world.out()))
    assert world.apps.config(world.shop)["CACHE_URL"] == addon.url
    redis = "berth-stand-in/redis:7"
    world.client_run("redis-cli", "-u", addon.url, "SET", "kept", "yes", image=redis)
    world.client_run("redis-cli", "-u", addon.url, "SAVE", image=redis)
    world.client.api.remove_container(addon.container, force=True)
    asyncio.run(world.service.reconcile())
    asyncio.run(world.service.wait_ready(addon))
    back = world.client_run("redis-cli", "-u", addon.url, "GET", "kept", image=redis)
    assert back.stdout.strip() == "yes"
    world.client.api.stop(addon.container, timeout=5)
    asyncio.run(world.service.reconcile())
    assert asyncio.run(world.engine.state(addon.container)) == "running"


def test_a_failed_release_leaves_nothing_behind(world: World) -> None:
    world.apps.create(world.shop)
    world.releaser.fail = True
    with pytest.raises(BerthError, match="release phase failed"):
        asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    assert world.service.store.of_app(world.shop) == []
    assert asyncio.run(world.engine.state(f"berth-addon-{world.shop}-redis")) is None
    assert not (world.data_dir / "addons" / world.shop / "redis").exists()
    assert "REDIS_URL" not in world.apps.config(world.shop)


def test_destroy_unsets_the_variable_and_removes_container_and_data(world: World) -> None:
    world.apps.create(world.shop)
    addon = asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    asyncio.run(world.service.destroy(world.shop, "redis", world.out()))
    assert "REDIS_URL" not in world.apps.config(world.shop)
    assert asyncio.run(world.engine.state(addon.container)) is None
    assert not (world.data_dir / "addons" / world.shop / "redis").exists()
    with pytest.raises(AddonNotFound):
        world.service.store.get(world.shop, "redis")
