"""The control API's resources answer at the paths the CLI and the hooks use, in-process."""

from __future__ import annotations

from tests.api.conftest import World


def test_apps_are_created_listed_and_described(world: World) -> None:
    created = world.client.post("/apps", json={"name": "shop"})
    assert created.status_code == 201, created.text
    assert created.json()["domains"] == ["shop.apps.example.test"]
    assert [a["name"] for a in world.client.get("/apps").json()] == ["shop"]
    info = world.client.get("/apps/shop").json()
    assert info["release"] is None and info["storage"] == []
    assert [e["kind"] for e in info["events"]] == ["AppCreated"]


def test_an_unknown_app_is_a_404_with_one_line(world: World) -> None:
    for path in ("/apps/ghost", "/apps/ghost/config", "/apps/ghost/domains",
                 "/apps/ghost/releases", "/apps/ghost/ps"):
        response = world.client.get(path)
        assert response.status_code == 404, path
        assert "ghost" in response.json()["error"]


def test_config_of_an_app_not_deployed_is_stored(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    events = world.stream("POST", "/apps/shop/config", json={"set": {"A": "1", "B": "2"}})
    assert events[-1] == {"result": {"release": None}}
    assert world.client.get("/apps/shop/config").json() == {"A": "1", "B": "2"}
    world.stream("POST", "/apps/shop/config", json={"unset": ["A"], "restart": False})
    assert world.client.get("/apps/shop/config").json() == {"B": "2"}


def test_domains_are_added_and_removed(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    added = world.client.post("/apps/shop/domains", json={"domain": "shop.example.com"})
    assert added.status_code == 201, added.text
    assert world.client.get("/apps/shop/domains").json() == {
        "domains": ["shop.apps.example.test", "shop.example.com"],
        "custom": ["shop.example.com"]}
    removed = world.client.delete("/apps/shop/domains/shop.example.com")
    assert removed.json() == {"domains": ["shop.apps.example.test"]}


def test_settings_storage_processes_and_releases_answer(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    settings = world.client.patch("/apps/shop/settings", json={"health-timeout": "90"})
    assert settings.status_code == 200, settings.text
    mounted = world.stream("POST", "/apps/shop/storage", json={"path": "/data"})
    assert mounted[-1]["result"]["mounts"][0]["path"] == "/data"
    assert world.client.get("/apps/shop/ps").json() == {
        "formation": {}, "stopped": False, "instances": []}
    assert world.client.get("/apps/shop/releases").json() == []
    assert world.client.get("/apps/shop/releases/v1").status_code == 404


def test_an_unknown_path_under_an_app_is_a_404(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    assert world.client.post("/apps/shop/ps/explode").status_code == 404
    assert world.client.get("/apps/shop/nothing").status_code == 404


def test_numbers_from_users_are_range_checked(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    for version in ("v99999999999999999999", "v0", "v\u00b2", "v\u0661", "v-1", "vv1"):
        response = world.client.get(f"/apps/shop/releases/{version}")
        assert response.status_code == 400, version
        assert "expected a number from 1 to 2147483647" in response.json()["error"]
    rollback = world.client.post("/apps/shop/rollback", json={"version": "v99999999999999999999"})
    assert rollback.status_code == 400
    for lines in ("99999999999999999999", "-1", "\u0661"):
        response = world.client.get("/apps/shop/logs", params={"lines": lines})
        assert response.status_code == 400 and "number of lines" in response.json()["error"]


def test_no_route_is_one_json_line_and_never_a_redirect(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    for method, path in (("GET", "/apps/shop/releases/"), ("GET", "/nothing"),
                         ("PUT", "/apps/shop/config"), ("GET", "/apps/shop/")):
        response = world.client.request(method, path, follow_redirects=False)
        assert response.status_code in (404, 405), path
        assert path in response.json()["error"]
