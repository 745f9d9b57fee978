"""install.sh, for real, into a temporary prefix (installing only: starting the agent on
ports 80/443 with the firewall on would touch the machine's own network namespace)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.install.harness import installer_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def run_install(root: Path, script: Path = REPO / "install.sh",
                **extra: str) -> subprocess.CompletedProcess[str]:
    env = installer_env(root, **extra, BERTH_DOMAIN="apps.example.com",
                        BERTH_EMAIL="ops@example.com")
    return subprocess.run(["sh", str(script)], env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def test_install_sets_berth_up_and_is_idempotent(target):
    first = run_install(target)
    assert first.returncode == 0, first.stderr
    assert "git push deploy main" in first.stdout
    config = (target / "etc" / "berth.toml").read_text()
    assert 'domain = "apps.example.com"' in config and 'email = "ops@example.com"' in config
    assert f'command = "env BERTH_CONFIG={target}/etc/berth.toml {target}/bin/berth"' in config
    berth = target / "bin" / "berth"
    version = subprocess.run([str(berth), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("berth ")
    python = target / "opt" / "venv" / "bin" / "python"
    found = subprocess.run([str(python), "-c", "from agent.shipped import hooks_dir, "
                            "buildpacks_dir; print(hooks_dir(), buildpacks_dir())"],
                           capture_output=True, text=True, cwd="/", check=False)
    assert found.returncode == 0, found.stderr
    site = str(target / "opt" / "venv" / "lib")
    assert [path.startswith(site) for path in found.stdout.split()] == [True, True]
    assert not (target / "opt" / "src").exists()  # installed from a wheel, not editable
    (target / "etc" / "berth.toml").write_text(config + "\n# kept\n")
    second = run_install(target)
    assert second.returncode == 0, second.stderr
    assert (target / "etc" / "berth.toml").read_text().endswith("# kept\n")  # never overwritten


def test_install_outside_a_checkout_takes_berth_source(target):
    script = target / "install.sh"
    script.write_text((REPO / "install.sh").read_text())
    without = run_install(target, script)
    assert without.returncode == 1 and without.stderr.count("\n") == 1
    assert "--source" in without.stderr
    result = run_install(target, script, BERTH_SOURCE=f"file://{REPO}")
    assert result.returncode == 0, result.stderr
    assert (target / "bin" / "berth").exists()


def test_bad_source_is_one_line(target):
    result = run_install(target, BERTH_SOURCE=str(target / "nothing-here"))
    assert result.returncode == 1
    assert result.stderr == f"install.sh: {target}/nothing-here does not exist\n"
