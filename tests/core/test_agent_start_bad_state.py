"""`berth agent` over a database holding bad state (another app's default domain as a
custom domain, unreadable settings, an unreadable live release): it starts, each such app
is logged, recorded as an event on it and skipped, and every other app is there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.schema import SCHEMA
from tests.conftest import docker_problem

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "apps.example.test"

pytestmark = pytest.mark.skipif(docker_problem() is not None,
                                reason=f"needs docker: {docker_problem()}")


def seed(data_dir: Path) -> None:
    db = Database.open(data_dir / "berth.db", [SCHEMA])
    apps = AppStore(db)
    for name in ("victim", "evil", "broken", "norelease", "fine"):
        apps.create(name)
    with db.transaction() as tx:  # as an older Berth, or a hand edit, left them
        tx.execute("INSERT INTO domains (domain, app, created_at) VALUES (?, 'evil', 0)",
                   (f"victim.{DOMAIN}",))
        tx.execute("UPDATE apps SET settings = '{', formation = 'x' WHERE name = 'broken'")
        tx.execute("INSERT INTO releases (app, number, state, description, created_at, "
                   "config) VALUES ('norelease', 1, 'live', 'v1', 0, '{not json')")
    db.close()


def berth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


def test_bad_state_is_skipped_app_by_app_and_the_agent_starts(tmp_path: Path) -> None:
    seed(tmp_path / "data")
    config = tmp_path / "berth.toml"
    config.write_text(f"""
[paths]
data_dir = "{tmp_path / 'data'}"
run_dir = "{tmp_path / 'run'}"
log_dir = "{tmp_path / 'log'}"

[deploy]
domain = "{DOMAIN}"

[ssh]
authorized_keys = "{tmp_path / 'authorized_keys'}"

[proxy]
listen = "127.0.0.1"
http_port = 0
https_port = 0

[acme]
enabled = false

[firewall]
enabled = false
boot_ruleset = "{tmp_path / 'firewall.nft'}"
""")
    env = {**os.environ, "BERTH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    agent = subprocess.Popen([sys.executable, "-m", "agent", "agent"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            listed = berth(env, "apps", "--json")
            if listed.returncode == 0:
                break
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, listed.stderr
            time.sleep(0.5)
        apps = {row["name"]: row for row in json.loads(listed.stdout)}
        assert sorted(apps) == ["broken", "evil", "fine", "norelease", "victim"]
        assert "cannot be read" in apps["broken"]["error"]
        assert apps["victim"]["domains"] == [f"victim.{DOMAIN}"]
        assert apps["evil"]["domains"] == [f"evil.{DOMAIN}"]
        assert "error" not in apps["fine"]
        info = json.loads(berth(env, "apps:info", "evil", "--json").stdout)
        skipped = [e["message"] for e in info["events"] if e["kind"] == "SkippedAtStart"]
        assert any(f"custom domain victim.{DOMAIN} not restored" in m for m in skipped)
    finally:
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, output
    assert "Traceback" not in output, output
    db = Database.open(tmp_path / "data" / "berth.db")
    events = EventStore(db)
    for name, says in (("broken", "the stored settings of broken cannot be read"),
                       ("norelease", "the stored release v1 of norelease cannot be read")):
        skipped = [e.message for e in events.list(name, 10) if e.kind == "SkippedAtStart"]
        assert any(says in message for message in skipped), (name, skipped)
    assert not [e for e in events.list("fine", 10) if e.kind == "SkippedAtStart"]
    db.close()
