"""What the tests of install.sh share besides fixtures: the environment that points the
installer into a temporary root (installing only: starting the agent on ports 80/443
with the firewall on would touch the machine's own network namespace)."""

from __future__ import annotations

import os
from pathlib import Path


def installer_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of an install into ROOT, without starting anything."""
    return {**os.environ, **extra, "BERTH_PREFIX": str(root / "opt"),
            "BERTH_BIN_DIR": str(root / "bin"), "BERTH_CONFIG": str(root / "etc" / "berth.toml"),
            "BERTH_NO_START": "1"}
