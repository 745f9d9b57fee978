"""Who may do what: admin keys everything; app keys only their apps' verbs and pushes;
keys, firewall and certificates need an admin key; keys from before scopes are admin."""

from __future__ import annotations

import io
import json
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from agent.api.access import refusal
from agent.cli.attach import run_with_terminal
from agent.cli.client import ControlClient
from agent.cli.sshcommand import ssh_command
from agent.errors import BerthError
from agent.paths import load_paths
from agent.store.audit import AuditStore
from agent.store.db import Database
from agent.store.keys import KeyStore, SshKey
from tests.api.conftest import World

CI = {"X-Berth-Key": "ci", "X-Berth-Actor": "ci"}


def public_key(tmp_path: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
                   check=True)
    return (tmp_path / f"{name}.pub").read_text()


def test_an_app_key_acts_only_on_its_apps(world: World, tmp_path: Path) -> None:
    for name in ("shop", "blog"):
        world.client.post("/apps", json={"name": name})
    added = world.client.post("/keys", json={"name": "ci", "apps": ["shop", "new"],
                                             "public_key": public_key(tmp_path, "ci")})
    assert added.json()["apps"] == ["shop", "new"] and not added.json()["admin"]
    assert world.client.get("/apps/shop/config", headers=CI).status_code == 200
    world.stream("POST", "/apps/shop/config", json={"set": {"A": "1"}}, headers=CI)
    assert world.client.post("/apps", json={"name": "new"}, headers=CI).status_code == 201
    assert [a["name"] for a in world.client.get("/apps", headers=CI).json()] == ["new", "shop"]
    refused = [
        world.client.get("/apps/blog/config", headers=CI),
        world.client.post("/apps/blog/config", json={"set": {"A": "1"}}, headers=CI),
        world.client.post("/apps/blog/deploys?sha=" + "a" * 40, headers=CI),
        world.client.post("/apps/blog/repo", headers=CI),
        world.client.post("/apps", json={"name": "other"}, headers=CI),
        world.client.delete("/apps/blog?confirm=blog", headers=CI),
        world.client.post("/keys", json={"name": "x", "public_key": "x"}, headers=CI),
        world.client.delete("/keys/ci", headers=CI),
        world.client.get("/firewall", headers=CI),
        world.client.post("/apps/shop/certs", content=b"pem", headers=CI),
        world.client.get("/events?app=blog", headers=CI),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.url, response.text)
        assert "\n" not in response.json()["error"]
    assert world.services.apps.config("blog") == {}
    assert sorted(world.services.apps.names()) == ["blog", "new", "shop"]
    assert {e["app"] for e in world.client.get("/events", headers=CI).json()} <= {"shop", "new"}


def test_an_unknown_key_may_do_nothing_and_admin_keys_everything(
        world: World, tmp_path: Path) -> None:
    world.client.post("/apps", json={"name": "shop"})
    unknown = world.client.get("/apps", headers={"X-Berth-Key": "ghost"})
    assert unknown.status_code == 403 and "'ghost' is not known" in unknown.json()["error"]
    world.client.post("/keys", json={"name": "boss", "public_key": public_key(tmp_path, "b")})
    boss = {"X-Berth-Key": "boss"}
    assert world.client.get("/firewall", headers=boss).status_code != 403
    assert world.client.post("/apps", json={"name": "blog"}, headers=boss).status_code == 201


def test_the_rule_is_a_pure_function() -> None:
    key = SshKey("ci", "k", "f", 0.0, ("shop",))
    assert refusal(key, "POST", "/apps/shop/ps/restart") is None
    assert refusal(key, "GET", "/apps/shop/run/attach") is None
    assert "may not act on app blog" in (refusal(key, "GET", "/apps/blog") or "")
    assert "needs an admin key" in (refusal(key, "POST", "/certs/renew") or "")
    assert refusal(SshKey("root", "k", "f", 0.0), "POST", "/firewall/disable") is None
    # Of doctor, exactly what its ports check reads: not the whole /doctor prefix.
    for path in ("/doctor/probe", "/doctor/challenges"):
        assert refusal(key, "GET", path) is None
        assert "needs an admin key" in (refusal(key, "POST", path) or "")
    for path in ("/doctor", "/doctor/probe/x", "/doctor/anything"):
        assert "needs an admin key" in (refusal(key, "GET", path) or ""), path


def test_keys_from_before_scopes_become_admin_keys(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "old.db", [("""CREATE TABLE ssh_keys (
        name TEXT PRIMARY KEY, public_key TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL)""",)])
    with db.transaction() as tx:
        tx.execute("INSERT INTO ssh_keys VALUES ('laptop', 'ssh-ed25519 AAAA', 'SHA256:x', 1)")
    keys = KeyStore(db)
    assert keys.get("laptop") == SshKey("laptop", "ssh-ed25519 AAAA", "SHA256:x", 1.0, None)
    assert KeyStore(db).list()[0].admin  # migrating twice is harmless
    db.close()


def test_over_ssh_an_app_key_is_refused_other_apps(
        agent_env: tuple[dict[str, str], Database], tmp_path: Path) -> None:
    environ, db = agent_env
    KeyStore(db).add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    paths = load_paths(environ)

    def ssh(command: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                status = ssh_command(paths, ["ci"], {**environ, "SSH_ORIGINAL_COMMAND": command})
            except Exception as exc:  # main() turns a BerthError into one line
                return 1, "", str(exc)
        return status, out.getvalue(), err.getvalue()

    assert ssh("config:set shop A=1 --no-restart")[0] == 0
    status, _, error = ssh("apps:create blog")
    assert status == 1 and "may not act on app blog" in error
    status, _, error = ssh("keys")
    assert status == 1 and "needs an admin key" in error
    status, _, error = ssh("git-receive-pack 'blog'")  # a first push would create it
    assert status == 1 and "may not act on app blog" in error
    # The forced command of an app key says so, and then even an existing app's
    # repository is only opened once the agent agrees.
    (paths.repo("blog") / "HEAD").parent.mkdir(parents=True)
    (paths.repo("blog") / "HEAD").write_text("ref: refs/heads/main\n")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            ssh_command(paths, ["ci", "scoped"],
                        {**environ, "SSH_ORIGINAL_COMMAND": "git-upload-pack 'blog'"})
        except Exception as exc:
            error = str(exc)
    assert "may not act on app blog" in error
    listed = json.loads(ssh("events --json")[1])  # only its apps' entries
    assert [(e["actor"], e["verb"], e["app"], e["outcome"]) for e in listed] == [
        ("ci", "config:set", "shop", "ok")]
    refusals = [(e.verb, e.app) for e in AuditStore(db).list() if e.outcome.startswith("failed")]
    assert ("push", "blog") in refusals and ("apps:create", "blog") in refusals


def test_a_terminal_session_is_held_to_the_keys_apps(
        agent_env: tuple[dict[str, str], Database]) -> None:
    """Over `ssh -t` a key's `run` gets a terminal session: it must carry the key like
    every other request, or the agent would take it for the server's own."""
    environ, db = agent_env
    KeyStore(db).add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    client = ControlClient(load_paths(environ).control_socket, actor="ci", verb="run",
                           key="ci")
    main, terminal = os.openpty()
    try:
        with pytest.raises(BerthError, match="key ci may not act on app blog"):
            run_with_terminal(client, "blog", "true", terminal, terminal)
    finally:
        os.close(main)
        os.close(terminal)


def test_a_refused_read_is_in_the_audit_trail(world: World, tmp_path: Path) -> None:
    world.client.post("/apps", json={"name": "blog"})
    world.client.post("/keys", json={"name": "ci", "apps": ["shop"],
                                     "public_key": public_key(tmp_path, "ci")})
    headers = {**CI, "X-Berth-Verb": "config"}
    assert world.client.get("/apps/blog/config", headers=headers).status_code == 403
    assert world.client.get("/apps", headers=headers).status_code == 200  # not recorded
    last = world.client.get("/events").json()[0]
    assert (last["actor"], last["verb"], last["app"]) == ("ci", "config", "blog")
    assert last["outcome"] == "failed: key ci may not act on app blog"


def test_the_forced_command_of_an_app_key_skips_the_fast_path() -> None:
    from agent.sshkeys import authorized_line

    scoped = authorized_line("/data/ssh-command", SshKey("ci", "ssh-ed25519 AAAA", "f", 0.0,
                                                         ("shop",)))
    admin = authorized_line("/data/ssh-command", SshKey("dev", "ssh-ed25519 AAAA", "f", 0.0))
    assert 'command="/data/ssh-command ssh-command ci scoped"' in scoped
    assert 'command="/data/ssh-command ssh-command dev"' in admin


def test_doctor_with_an_app_key_says_which_checks_need_an_admin_key(
        agent_env: tuple[dict[str, str], Database]) -> None:
    environ, db = agent_env
    KeyStore(db).add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        ssh_command(load_paths(environ), ["ci"], {**environ, "SSH_ORIGINAL_COMMAND": "doctor"})
    lines = out.getvalue().splitlines()
    for subject in ("certificates", "firewall"):
        assert (f"skip  {subject}: not checked: this check needs an admin key "
                "(this key is limited to apps)") in lines, out.getvalue()
    assert not [line for line in lines if line.startswith(("warn  certificates", "warn  firewall"))]
