"""agent.deploy.pushed: which command each process type runs, and where it came from."""

from __future__ import annotations

from agent.deploy.pushed import PushedTree
from agent.procfile import parse_procfile


def pushed(procfile: str) -> PushedTree:
    return PushedTree(parse_procfile(procfile), "")


def test_a_procfile_over_a_dockerfile_says_the_cmd_is_not_used() -> None:
    lines = pushed("web: ./serve --port $PORT\n").origins({}, "dockerfile")
    assert lines == ["web: ./serve --port $PORT (from the Procfile, not the Dockerfile's CMD)"]


def test_without_a_procfile_a_dockerfile_app_runs_its_cmd() -> None:
    assert pushed("").origins({}, "dockerfile") == ["web: the image's CMD (no Procfile line for it)"]


def test_buildpack_defaults_and_procfile_lines_are_told_apart() -> None:
    lines = pushed("worker: python worker.py\n").origins(
        {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}, "python")
    assert lines == [
        "web: gunicorn app:app --bind 0.0.0.0:$PORT (the python builder's default)",
        "worker: python worker.py (from the Procfile)",
    ]
