"""The audit trail: every change asked of the API is recorded with who asked (the SSH
key's name over SSH), the verb, the app and the outcome; `berth events` shows it."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

from agent.cli.sshcommand import ssh_command
from agent.paths import load_paths
from agent.store.db import Database
from agent.store.keys import KeyStore, SshKey
from tests.api.conftest import World

AS_LAPTOP = {"X-Berth-Actor": "laptop", "X-Berth-Verb": "config:set"}


def trail(world: World) -> list[tuple[str, str, str, str]]:
    rows = world.client.get("/events").json()
    return [(r["actor"], r["verb"], r["app"], r["outcome"]) for r in reversed(rows)]


def test_changes_are_recorded_with_who_asked_and_how_they_ended(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"},
                      headers={"X-Berth-Actor": "root@server", "X-Berth-Verb": "apps:create"})
    world.stream("POST", "/apps/shop/config", json={"set": {"A": "1"}}, headers=AS_LAPTOP)
    world.client.post("/apps/shop/config", json={"set": {"1A": "x"}}, headers=AS_LAPTOP)
    world.client.post("/apps/shop/domains", json={"domain": "other.apps.example.test"})
    world.client.get("/apps/shop/config", headers=AS_LAPTOP)  # reads are not changes
    assert trail(world) == [
        ("root@server", "apps:create", "shop", "ok"),
        ("laptop", "config:set", "shop", "ok"),
        ("laptop", "config:set", "shop",
         "failed: invalid config key '1A': must match ^[A-Za-z_][A-Za-z0-9_]*$ "
         "(letters, digits and underscores)"),
        ("unknown", "POST /apps/shop/domains", "shop",
         "failed: other.apps.example.test is reserved: names directly under "
         "apps.example.test are apps' default domains"),
    ]
    only_shop = world.client.get("/events", params={"app": "shop", "limit": "1"}).json()
    assert len(only_shop) == 1 and only_shop[0]["outcome"].startswith("failed: other")


def test_a_streamed_change_that_fails_is_recorded_failed(world: World) -> None:
    world.client.post("/apps", json={"name": "shop"})
    events = world.stream("POST", "/apps/shop/rollback", json={}, headers={
        "X-Berth-Actor": "ci", "X-Berth-Verb": "rollback"})
    assert "error" in events[-1]
    assert trail(world)[-1] == ("ci", "rollback", "shop",
                                f"failed: {events[-1]['error']}")


def test_a_verb_over_ssh_is_recorded_under_its_key(
        agent_env: tuple[dict[str, str], Database]) -> None:
    environ, db = agent_env
    KeyStore(db).add(SshKey("laptop", "ssh-ed25519 AAAA", "SHA256:laptop", 0.0))
    paths = load_paths(environ)
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        status = ssh_command(paths, ["laptop"], {
            **environ, "SSH_ORIGINAL_COMMAND": "config:set shop A=1 --no-restart"})
        assert status == 0
        ssh_command(paths, ["laptop"], {**environ, "SSH_ORIGINAL_COMMAND": "events shop --json"})
    rows = json.loads(out.getvalue()[out.getvalue().index("["):])
    assert [(r["actor"], r["verb"], r["app"], r["outcome"]) for r in rows] == [
        ("laptop", "config:set", "shop", "ok")]
