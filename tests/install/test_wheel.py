"""Berth as a user installs it: a wheel built from this checkout, installed (not
editable) into a fresh virtualenv, runs the agent that takes a real `git push`: the hook
templates and the buildpacks come from the installed package, not from the checkout."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import docker_problem, ssh_problem
from tests.e2e.conftest import APPS, DOMAIN, agent_config, remove_leftovers
from tests.e2e.harness import AgentProcess, GitUser, SshServer, free_port, world_readable_tempdir

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                            timeout=900, env={k: v for k, v in os.environ.items()
                                              if k != "PYTHONPATH"}, check=False)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def build_wheel(root: Path) -> Path:
    """A wheel built from a clean copy of the checkout (no build/ left in it)."""
    source = root / "source"
    scratch = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".hypothesis")

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = {"build", "dist"} if Path(directory) == REPO else set()
        return set(scratch(directory, names)) | (top & set(names))

    shutil.copytree(REPO, source, ignore=ignore)
    return pip_wheel(source, root / "dist")


def pip_wheel(source: Path, output: Path) -> Path:
    said = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", output, source)
    assert "SetuptoolsDeprecationWarning" not in said
    (wheel,) = output.glob("berth-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A fresh virtualenv with Berth installed from its wheel; yields its python."""
    if docker_problem() or ssh_problem():
        pytest.skip(f"needs docker and ssh: {docker_problem() or ssh_problem()}")
    root = world_readable_tempdir("berth-wheel-")
    try:
        wheel = build_wheel(root)
        run(SYSTEM_PYTHON, "-m", "venv", root / "venv")
        python = root / "venv" / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", wheel)
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        yield python
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_wheel_carries_hooks_and_buildpacks(installed: Path):
    found = run(installed, "-c", "import agent.shipped as s; print(s.hooks_dir()); "
                "print(s.buildpacks_dir())", cwd=Path("/"))
    hooks, buildpacks = found.split()
    site = installed.parent.parent / "lib"
    assert hooks.startswith(str(site)) and buildpacks.startswith(str(site))
    assert os.access(Path(hooks) / "pre-receive", os.X_OK)
    assert sorted(p.name for p in Path(buildpacks).iterdir() if p.is_dir()) == [
        "10-python", "20-node", "30-static"]


def test_an_app_deploys_with_the_installed_package(installed: Path):
    root = world_readable_tempdir("berth-wheel-agent-")
    config = root / "berth.toml"
    berth = installed.parent / "berth"
    command = f"env BERTH_CONFIG={shlex.quote(str(config))} {shlex.quote(str(berth))}"
    http_port = free_port()
    config.write_text(agent_config(root, http_port=http_port, https_port=free_port(),
                                   command=command))
    config.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    agent = AgentProcess(root, config, http_port, 0, {**env, "BERTH_CONFIG": str(config)},
                         python=str(installed))
    sshd = SshServer(root, root / "ssh" / "authorized_keys")
    try:
        agent.start()
        sshd.start()
        (root / "developer").mkdir()
        user = GitUser(root / "developer", sshd.port)
        agent.ok("keys:add", "dev", stdin=user.public_key)
        tree = user.repo(APPS / "flask", "e2e-wheel")
        pushed = tree.push()
        output = pushed.stdout + pushed.stderr
        assert "Python app detected" in output and "is live" in output, output
        assert agent.get(f"e2e-wheel.{DOMAIN}") == (200, b"hello from flask on port 5000\n")
        same = agent.ok("version").splitlines()
        assert same[0].endswith(" (installed)") and same[1].endswith(" (running)")
        assert same[0].split()[1] == same[1].split()[1]
        upgrade_under(agent, installed)
    finally:
        sshd.stop()
        agent.stop()
        remove_leftovers()
        shutil.rmtree(root, ignore_errors=True)


def upgrade_under(agent: AgentProcess, python: Path) -> None:
    """A new build installed while the agent runs: `berth version` says they differ."""
    source = python.parents[2] / "source"
    (source / "buildpacks" / "README.md").write_text("changed\n", encoding="utf-8")
    wheel = pip_wheel(source, source.parent / "dist2")
    run(python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", wheel)
    installed, running = agent.ok("version").splitlines()
    assert installed.split()[1] != running.split()[1]
    assert "not the installed one: restart it" in running
