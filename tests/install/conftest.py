"""Fixtures of the tests of install.sh: a temporary root for a real install, and releases
published where the fresh-server containers reach them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import docker_problem
from tests.e2e.harness import world_readable_tempdir
from tests.install.harness import (
    REPO,
    Releases,
    cut_release,
    later_checkout,
    project_version,
    published,
)


@pytest.fixture
def target() -> Iterator[Path]:
    """A temporary root to install into; needs root and the berth user."""
    if os.geteuid() != 0 or subprocess.run(["id", "berth"], capture_output=True).returncode:
        pytest.skip("install.sh needs root and creates the berth user (tests/run does both)")
    root = world_readable_tempdir("berth-install-")
    yield root
    subprocess.run(["rm", "-rf", str(root)])


@pytest.fixture(scope="session")
def bridge_releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    """This checkout's release and a later one, cut once by `.ci/release` and served over
    HTTP on the gateway of Docker's default bridge: the host's address as the containers
    on that bridge (the fresh servers) see it."""
    if docker_problem():
        pytest.skip(f"needs docker: {docker_problem()}")
    gateway = subprocess.run(["docker", "network", "inspect", "bridge", "--format",
                              "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
                             capture_output=True, text=True, timeout=30, check=False)
    addresses = [word for word in gateway.stdout.split() if "." in word]
    if gateway.returncode or not addresses:
        pytest.fail(f"no IPv4 gateway on docker's bridge: {gateway.stdout}{gateway.stderr}")
    directory = tmp_path_factory.mktemp("releases")
    checkout = tmp_path_factory.mktemp("later-checkout")
    with published(directory, addresses[0]) as site:
        first, later = project_version(REPO), later_checkout(checkout)
        for version, source in ((first, REPO), (later, checkout)):
            cut_release(source, f"{site.base}/berth/{version}", directory / "berth" / version)
        yield Releases(site, f"{site.base}/berth/{first}", first, f"{site.base}/berth/{later}",
                       later)
