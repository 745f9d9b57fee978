"""A crash event as `apps:info` shows it through the CLI: the instance's last lines under
it, indented past the time and the kind."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from agent.cli.main import main
from agent.store.db import Database
from agent.store.events import EventStore


def test_apps_info_shows_a_crash_with_its_last_lines(agent_env: tuple[dict[str, str], Database]) -> None:
    environ, db = agent_env
    EventStore(db).record("shop", "InstanceRestarted", (
        "web.1 exited with status 3; restarted by its restart policy; its last lines:\n"
        "  | connecting to [DATABASE_URL]\n  | no such table: users"))
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert main(["apps:info", "shop"], environ) == 0
    lines = out.getvalue().splitlines()
    (at,) = [n for n, line in enumerate(lines) if "InstanceRestarted: web.1 exited" in line]
    assert lines[at + 1:at + 3] == ["      | connecting to [DATABASE_URL]",
                                    "      | no such table: users"]
