"""What the tests of install.sh share besides fixtures: the environment that points the
installer into a temporary root (installing only: starting the agent on ports 80/443
with the firewall on would touch the machine's own network namespace), its shell
functions to run on their own, and stand-ins for the commands that read the machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "install.sh"


def installer_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of an install into ROOT, without starting anything."""
    return {**os.environ, **extra, "BERTH_PREFIX": str(root / "opt"),
            "BERTH_BIN_DIR": str(root / "bin"), "BERTH_CONFIG": str(root / "etc" / "berth.toml"),
            "BERTH_NO_START": "1"}


def functions(*names: str) -> str:
    """These shell functions of install.sh, to run on their own."""
    text = SCRIPT.read_text()
    found = []
    for name in names:
        match = re.search(rf"^{name}\(\) {{(?:[^\n]*}}$|.*?^}}$)", text, re.DOTALL | re.MULTILINE)
        assert match, name
        found.append(match.group(0))
    return "\n".join(found) + "\n"


def fake_command(directory: Path, name: str, body: str) -> None:
    """A stand-in for command NAME in DIRECTORY (put first on PATH): a /bin/sh script."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def run_shell(script: str, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """SCRIPT run by /bin/sh with ARGS as its positional parameters."""
    return subprocess.run(["/bin/sh", "-c", script, "install.sh", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
