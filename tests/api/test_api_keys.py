"""SSH keys through the API: authorized_keys follows the database; bad input changes
nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.api.conftest import World


def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop",
                    "-f", str(tmp_path / "id")], check=True)
    return (tmp_path / "id.pub").read_text()


def test_keys_are_added_and_removed_with_authorized_keys(world: World, tmp_path: Path) -> None:
    key = public_key(tmp_path)
    added = world.client.post("/keys", json={"name": "laptop", "public_key": key})
    assert added.status_code == 201, added.text
    authorized = world.services.config.ssh.authorized_keys.read_text()
    assert key.split()[1] in authorized and "laptop" in authorized
    assert [k["name"] for k in world.client.get("/keys").json()] == ["laptop"]
    again = world.client.post("/keys", json={"name": "laptop", "public_key": key})
    assert again.status_code == 409
    assert world.client.delete("/keys/laptop").json() == {"removed": "laptop"}
    assert key.split()[1] not in world.services.config.ssh.authorized_keys.read_text()


def test_bad_keys_change_nothing(world: World, tmp_path: Path) -> None:
    key = public_key(tmp_path)
    for body in ({"name": "bad name", "public_key": key}, {"name": "ok", "public_key": "x"},
                 {"name": "ok", "public_key": key + "\n" + key}):
        response = world.client.post("/keys", json=body)
        assert response.status_code == 400, (body, response.text)
        assert "\n" not in response.json()["error"]
    assert world.client.get("/keys").json() == []
    assert world.client.delete("/keys/nobody").status_code == 404
