"""A restored berth.toml applies at once: `berth restore` of an archive whose berth.toml
differs from the running one restarts the agent in place (the same process, its
sockets kept), which then runs on the restored file. Real agent, real Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import DOMAIN, make_agent, remove_leftovers
from tests.e2e.harness import AgentProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BEFORE, AFTER = "e2e-rc-before", "e2e-rc-after"


def domains(agent: AgentProcess, app: str) -> list[str]:
    agent.ok("apps:create", app)
    return list(json.loads(agent.ok("apps:info", app, "--json"))["domains"])


def test_a_restored_berth_toml_applies_without_a_manual_restart(e2e_root: Path) -> None:
    agent = make_agent(e2e_root)
    agent.start()
    try:
        archive = e2e_root / "server.tar"
        agent.ok("backup", "--output", str(archive))
        config = agent.config_path
        archived = config.read_text()
        config.write_text(archived.replace(f'domain = "{DOMAIN}"', 'domain = "moved.test"'))
        agent.restart_in_place()
        assert domains(agent, BEFORE) == [f"{BEFORE}.moved.test"]
        agent.ok("apps:destroy", BEFORE, "--confirm", BEFORE)

        assert agent.process is not None
        pid = agent.process.pid
        starts = agent.log_path.read_text(errors="replace").count("agent ready")
        said = agent.ok("restore", str(archive))
        assert "restarts in place to apply it" in said, said
        agent._wait_until_ready(90, lambda: agent.log_path.read_text(
            errors="replace").count("agent ready") > starts)
        assert agent.process.pid == pid and agent.process.poll() is None
        assert config.read_text() == archived
        assert "moved.test" in (config.parent / "berth.toml.before-restore").read_text()
        assert domains(agent, AFTER) == [f"{AFTER}.{DOMAIN}"]
    finally:
        agent.stop()
        remove_leftovers("e2e-rc-")
