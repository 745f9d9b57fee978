"""Scoped keys over real OpenSSH and a real agent: an app key uses and pushes to its own
apps only; refusals are one line, change nothing, and are in the audit trail."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import APPS
from tests.e2e.harness import GitUser

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

OWN, OTHER = "e2e-acc-own", "e2e-acc-other"


def test_an_app_key_is_held_to_its_apps(stack, e2e_root):
    agent, developer = stack
    for name in (OWN, OTHER):
        agent.ok("apps:create", name)
    (e2e_root / "ci").mkdir(exist_ok=True)
    ci = GitUser(e2e_root / "ci", developer.ssh_port)
    agent.ok("keys:add", "ci", "--apps", OWN, stdin=ci.public_key)
    keys = {k["name"]: k for k in json.loads(agent.ok("keys", "--json"))}
    assert keys["dev"]["admin"] and keys["ci"]["apps"] == [OWN]

    assert ci.ssh(f"config:set {OWN} A=1 --no-restart").returncode == 0
    for command, says in ((f"config:set {OTHER} A=1", f"may not act on app {OTHER}"),
                          ("keys", "needs an admin key"),
                          (f"apps:destroy {OTHER} --confirm {OTHER}", f"app {OTHER}")):
        refused = ci.ssh(command)
        error = refused.stderr.decode()
        assert refused.returncode == 1 and says in error, (command, error)
        assert error.count("\n") == 1 and "Traceback" not in error

    work = ci.repo(APPS / "flask", OTHER)
    push = work.push(check=False)
    assert push.returncode != 0 and f"may not act on app {OTHER}" in push.stderr, push.stderr
    assert json.loads(agent.ok("releases", OTHER, "--json")) == []
    repo = agent.root / "data" / "repos" / f"{OTHER}.git"
    heads = subprocess.run(["git", "-c", "safe.directory=*", "--git-dir", str(repo),
                            "for-each-ref"], capture_output=True, text=True, check=False)
    assert heads.returncode == 0 and heads.stdout == ""  # the rejected push left no branch
    assert json.loads(agent.ok("config", OTHER, "--json")) == {}

    clone = subprocess.run(["git", "clone", f"berth@127.0.0.1:{OTHER}", str(e2e_root / "c1")],
                           env=ci.env, capture_output=True, text=True, timeout=120, check=False)
    assert clone.returncode != 0 and f"may not act on app {OTHER}" in clone.stderr
    own = subprocess.run(["git", "clone", f"berth@127.0.0.1:{OWN}", str(e2e_root / "c2")],
                         env=ci.env, capture_output=True, text=True, timeout=120, check=False)
    assert own.returncode == 0, own.stderr

    trail = json.loads(agent.ok("events", "--json"))
    mine = [(e["actor"], e["verb"], e["app"]) for e in trail if e["actor"] == "ci"]
    assert ("ci", "push", OTHER) in mine and ("ci", "config:set", OWN) in mine
    visible = json.loads(ci.ssh("events --json").stdout)
    assert {e["app"] for e in visible} == {OWN}
