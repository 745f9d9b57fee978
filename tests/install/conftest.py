"""Fixtures of the tests of install.sh: a temporary root for a real install."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import world_readable_tempdir


@pytest.fixture
def target() -> Iterator[Path]:
    """A temporary root to install into; needs root and the berth user."""
    if os.geteuid() != 0 or subprocess.run(["id", "berth"], capture_output=True).returncode:
        pytest.skip("install.sh needs root and creates the berth user (tests/run does both)")
    root = world_readable_tempdir("berth-install-")
    yield root
    subprocess.run(["rm", "-rf", str(root)])
