"""Real builds with the other package managers (uv, pipenv, plain pyproject.toml, yarn,
pnpm), from the tiny trees in tests/build/managers/: each must install its locked
dependency and run. Poetry is covered by the pure tests only: it needs PyPI's JSON API,
which this machine's TLS-intercepting proxy answers with 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.conftest import Lab, fetch

MANAGERS = Path(__file__).resolve().parent / "managers"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.mark.parametrize(
    ("tree", "note"),
    [
        ("uv", "Installing dependencies with uv (uv.lock)"),
        ("pipenv", "Installing dependencies with pipenv (Pipfile)"),
        ("pyproject", "Installing dependencies with pyproject (pyproject.toml)"),
    ],
)
def test_python_managers_install_and_run(lab: Lab, tree: str, note: str) -> None:
    run = lab.build(MANAGERS / tree, name=f"mgr-{tree}")
    assert f"       {note}" in run.lines
    assert run.image.default_processes == {"web": "python main.py"}
    assert lab.run(run.image.tag, ["python", "main.py"]) == "ok 1.16.0\n"


@pytest.mark.parametrize(("tree", "web"), [("yarn", "yarn start"), ("pnpm", "pnpm start")])
def test_node_managers_install_and_serve(lab: Lab, tree: str, web: str) -> None:
    run = lab.build(MANAGERS / tree, name=f"mgr-{tree}")
    assert run.image.default_processes == {"web": web}
    with lab.serve(run.image.tag, web) as url:
        assert fetch(url + "/") == (200, "ok 1m\n")
