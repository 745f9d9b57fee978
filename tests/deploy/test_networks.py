"""An app's own network: its name, its address range, made once, removed with the app."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from agent.deploy.networks import (
    app_network,
    ensure_app_network,
    free_subnet,
    installation_networks,
    remove_app_network,
)


def test_the_network_is_named_after_the_app() -> None:
    assert app_network("shop") == "berth-shop"


def test_a_free_subnet_skips_every_range_in_use() -> None:
    assert free_subnet("10.213.0.0/16", []) == "10.213.0.0/24"
    taken = ["10.213.0.0/24", "10.213.1.128/25", "172.17.0.0/16"]
    assert free_subnet("10.213.0.0/16", taken) == "10.213.2.0/24"
    # A wider network in use covers many candidates at once.
    assert free_subnet("10.213.0.0/16", ["10.213.0.0/20"]) == "10.213.16.0/24"


def test_a_random_pick_is_one_of_the_free_ones() -> None:
    import random

    taken = [f"10.213.{n}.0/24" for n in range(0, 256, 2)]
    picks = {free_subnet("10.213.0.0/16", taken, rng=random.Random(seed)) for seed in range(50)}
    assert len(picks) > 10
    assert all(int(pick.split(".")[2]) % 2 == 1 for pick in picks)


def test_a_full_pool_has_no_subnet() -> None:
    assert free_subnet("10.213.0.0/23", ["10.213.0.0/24", "10.213.1.0/24"]) is None
    assert free_subnet("10.213.0.0/16", ["10.0.0.0/8"]) is None


@pytest.fixture
def api() -> Iterator[object]:
    import docker

    client = docker.from_env()
    yield client.api
    client.close()


@pytest.mark.docker
def test_the_network_is_made_once_labelled_and_removed(api) -> None:
    app = f"nettest-{secrets.token_hex(3)}"
    installation = f"test-{secrets.token_hex(3)}"
    try:
        name = ensure_app_network(api, app, installation)
        assert ensure_app_network(api, app, installation) == name  # idempotent
        (network,) = [n for n in api.networks(names=[name]) if n["Name"] == name]
        subnet = network["IPAM"]["Config"][0]["Subnet"]
        assert subnet.startswith("10.213.") and subnet.endswith("/24")
        assert network["Labels"]["berth.app"] == app
        assert installation_networks(api, installation) == {app: name}
        assert remove_app_network(api, app)
        assert not [n for n in api.networks(names=[name]) if n["Name"] == name]
        assert remove_app_network(api, app)  # gone already is fine
    finally:
        remove_app_network(api, app)


@pytest.mark.docker
def test_two_apps_get_two_ranges(api) -> None:
    apps = [f"nettest-{secrets.token_hex(3)}" for _ in range(2)]
    try:
        names = [ensure_app_network(api, app, "test") for app in apps]
        subnets = {api.inspect_network(name)["IPAM"]["Config"][0]["Subnet"] for name in names}
        assert len(subnets) == 2
    finally:
        for app in apps:
            remove_app_network(api, app)
