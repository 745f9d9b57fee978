"""Fixtures of the deploy tests: a deployer over the fakes of tests/deploy/fakes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.deploy.fakes import EarlyBuilder, EarlyRuntime, World, world_in


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with world_in(tmp_path) as built:
        yield built


@pytest.fixture
def early(tmp_path: Path) -> Iterator[World]:
    """A world whose engine and builder also do what an early start asks of them."""
    runtime = EarlyRuntime()
    with world_in(tmp_path, runtime, EarlyBuilder(runtime)) as built:
        yield built
