"""Config changes: none lost when they race each other or an operation holding the app,
and values an instance could not start with are refused at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from agent.api.app import build_api
from agent.deploy.output import DeployOutput
from agent.services.configvars import MAX_CONFIG_BYTES, MAX_VAR_BYTES
from tests.api.conftest import World, make_services


def outcome(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = json.loads(response.text.splitlines()[-1])
    return result


async def test_concurrent_changes_all_stay_even_behind_an_operation(tmp_path: Path) -> None:
    services, db = make_services(tmp_path)
    transport = httpx.ASGITransport(app=build_api(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        assert (await client.post("/apps", json={"name": "shop"})).status_code == 201
        await client.post("/apps/shop/config", json={"set": {"GONE": "1", "KEPT": "0"}})

        def change(i: int) -> Any:
            body: dict[str, Any] = {"set": {f"K{i}": str(i)}}
            if i % 3 == 0:
                body["restart"] = False  # stored at once, beside the queued releases
            if i == 4:
                body["unset"] = ["GONE"]
            return client.post("/apps/shop/config", json=body)

        first = await asyncio.gather(*(change(i) for i in range(6)))
        async with services.deployer.app_lock("shop", DeployOutput()):  # a push, say
            queued = [asyncio.create_task(change(i)) for i in range(6, 12)]
            await asyncio.sleep(0.3)
            assert not any(task.done() for i, task in enumerate(queued, 6) if i % 3)
        rest = await asyncio.gather(*queued)
        for response in first + rest:
            assert "result" in outcome(response), response.text
        config = (await client.get("/apps/shop/config")).json()
    assert config == {"KEPT": "0", **{f"K{i}": str(i) for i in range(12)}}
    kinds = [e.kind for e in services.events.list("shop", 100)]
    assert kinds.count("ConfigChanged") == 13
    db.close()


def test_a_value_over_the_limit_is_refused_and_nothing_changes(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    huge = "x" * (1024 * 1024)
    response = world.client.post("/apps/shop/config", json={"set": {"A": "1", "BIG": huge}})
    assert response.status_code == 413
    error = response.json()["error"]
    assert "BIG=VALUE" in error and f"{MAX_VAR_BYTES} bytes" in error and "\n" not in error
    assert world.client.get("/apps/shop/config").json() == {}


def test_a_config_growing_over_the_total_limit_is_refused(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    value = "v" * (MAX_VAR_BYTES - 100)
    count = MAX_CONFIG_BYTES // MAX_VAR_BYTES
    for i in range(count):
        world.stream("POST", "/apps/shop/config",
                     json={"set": {f"K{i}": value}, "restart": False})
    response = world.client.post("/apps/shop/config", json={"set": {"ONE_MORE": value}})
    assert response.status_code == 413 and "config of shop" in response.json()["error"]
    assert len(world.client.get("/apps/shop/config").json()) == count
    # Shrinking is always allowed.
    world.stream("POST", "/apps/shop/config", json={"unset": ["K0"]})


def test_values_no_environment_can_hold_are_refused(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    for body in ('{"set": {"A": "a\\u0000b"}}', '{"set": {"A": "\\ud800"}}',
                 '{"set": {"A": 1}}', '{"set": ["A"]}', '{"unset": "A"}', '{}',
                 '{"set": {"A": "1"}, "unset": ["A"]}', '{"unset": ["NOPE"]}',
                 '{"set": {"1A": "x"}}'):
        response = world.client.post("/apps/shop/config", content=body)
        assert response.status_code in (400, 404), (body, response.text)
        assert "\n" not in response.json()["error"]
    assert world.client.get("/apps/shop/config").json() == {}


def test_port_is_refused_with_what_it_will_be(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    response = world.client.post("/apps/shop/config", json={"set": {"PORT": "8080"}})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("PORT cannot be set: Berth gives every process "
                                               "PORT (5000")
    assert world.client.get("/apps/shop/config").json() == {}
