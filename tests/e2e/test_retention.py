"""Old images are pruned beyond deploy.keep_releases; kept ones still roll back."""

from __future__ import annotations

import time

import docker
import pytest

from tests.e2e.conftest import APPS, DOMAIN, running_stack

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

APP = "e2e-keep"


@pytest.fixture(scope="module")
def setup(e2e_root):
    with running_stack(e2e_root, deploy="keep_releases = 2") as started:
        yield started


def tags() -> set[str]:
    client = docker.from_env()
    try:
        return {t for i in client.images.list(name=f"berth/{APP}") for t in i.tags}
    finally:
        client.close()


def test_only_the_last_releases_images_are_kept(setup):
    agent, user = setup
    work = user.repo(APPS / "dockerfile", APP)
    for n in range(1, 5):
        work.write("server.py", (APPS / "dockerfile" / "server.py").read_text()
                   .replace("from a Dockerfile", f"from push {n}"))
        work.commit(f"push {n}")
        work.push()
    # Pruning follows the swap, after the push has returned.
    expected = {f"berth/{APP}:v3", f"berth/{APP}:v4"}
    deadline = time.monotonic() + 30
    while tags() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert tags() == expected
    agent.ok("rollback", APP, "v3")
    assert agent.get(f"{APP}.{DOMAIN}") == (200, b"hello from push 3\n")
    gone = agent.cli("rollback", APP, "v1")
    assert gone.returncode == 1 and "pruned" in gone.stderr
