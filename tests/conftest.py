"""Shared test plumbing: component markers that skip only when the component is absent.

`tests/run` installs and starts every component, so under it nothing here skips; a
developer running plain `pytest` on a bare machine gets skips that name what is missing.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
from functools import cache

import pytest

STAND_IN_IMAGE = os.environ.get("BERTH_STAND_IN_TAG", "berth-stand-in/bookworm:1")


@cache
def ipv6_loopback() -> bool:
    """Whether this host can listen on ::1 (IPv6 is not disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@cache
def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "docker engine does not answer"
    if info.returncode != 0:
        return "docker engine not running"
    image = subprocess.run(["docker", "image", "inspect", STAND_IN_IMAGE], capture_output=True,
                           check=False)
    if image.returncode != 0:
        return f"stand-in image {STAND_IN_IMAGE} missing (tests/support/stand-in-images.sh)"
    return None


@cache
def ssh_problem() -> str | None:
    if not os.path.exists("/usr/sbin/sshd"):
        return "openssh-server not installed"
    if subprocess.run(["id", "berth"], capture_output=True, check=False).returncode != 0:
        return "no 'berth' system user (tests/run creates it)"
    if os.geteuid() != 0:
        return "needs root"
    return None


@cache
def pebble_problem() -> str | None:
    for tool in ("pebble", "pebble-challtestsrv"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@cache
def netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


_CHECKS = {
    "docker": docker_problem,
    "ssh": ssh_problem,
    "pebble": pebble_problem,
    "netns": netns_problem,
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, check in _CHECKS.items():
        if item.get_closest_marker(marker) is not None:
            problem = check()
            if problem is not None:
                pytest.skip(f"{marker}: {problem}")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (fixtures stay synchronous)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True
