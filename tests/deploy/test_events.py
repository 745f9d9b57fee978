"""The engine's events: a death as a value, and followed from a real engine."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from agent.deploy.events import ContainerDied, EngineEvents, died_from
from tests.conftest import STAND_IN_IMAGE

EVENT = {
    "Type": "container", "Action": "die", "id": "abc",
    "Actor": {"ID": "abc", "Attributes": {
        "berth.app": "shop", "berth.release": "3", "berth.role": "process",
        "berth.process": "web", "berth.index": "2", "exitCode": "137", "name": "x"}},
    "time": 1700000000, "timeNano": 1700000000500000000,
}


def test_a_die_event_is_a_death() -> None:
    assert died_from(EVENT) == ContainerDied("abc", "shop", "process", 3, "web.2", 137,
                                             1700000000.5)


def test_an_oom_event_names_its_container() -> None:
    from agent.deploy.events import oom_in

    assert oom_in({**EVENT, "Action": "oom"}) == "abc"
    assert oom_in(EVENT) is None


def test_other_events_and_foreign_containers_are_not() -> None:
    assert died_from({**EVENT, "Action": "start"}) is None
    assert died_from({**EVENT, "Type": "network"}) is None
    assert died_from({**EVENT, "Actor": {"ID": "abc", "Attributes": {"name": "x"}}}) is None


@pytest.mark.docker
async def test_a_killed_container_is_reported_at_once() -> None:
    import docker

    client = docker.from_env()
    installation = f"test-{secrets.token_hex(4)}"
    events = EngineEvents(client, installation)
    labels = {"berth.managed": installation, "berth.app": "evtest", "berth.release": "1",
              "berth.role": "process", "berth.process": "web", "berth.index": "1"}
    deaths = events.deaths()
    try:
        first = asyncio.ensure_future(anext(deaths))
        await asyncio.sleep(0.5)  # the stream is open
        container = client.api.create_container(STAND_IN_IMAGE, command=["sleep", "600"],
                                                labels=labels)
        client.api.start(container["Id"])
        client.api.kill(container["Id"])
        death = await asyncio.wait_for(first, 10)
        assert (death.container_id, death.dyno, death.exit_code) == (
            container["Id"], "web.1", 137)
    finally:
        await deaths.aclose()
        for found in client.api.containers(
                all=True, filters={"label": f"berth.managed={installation}"}):
            client.api.remove_container(found["Id"], force=True)
        client.close()
