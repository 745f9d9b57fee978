"""Fixtures of the firewall tests: the namespace lab (see `lab.py`), built once per module
and always deleted, even when a test fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.firewall.lab import Lab, remove_stale_namespaces


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    for tool in ("iptables", "ip6tables", "ssh-keygen"):
        if os.geteuid() == 0 and shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    remove_stale_namespaces()
    pid = os.getpid()
    built = Lab(f"bfw{pid}s", f"bfw{pid}c", f"bfw{pid}k", tmp_path_factory.mktemp("lab"))
    try:
        built.build()
        yield built
    finally:
        built.destroy()


@pytest.fixture
def clean_lab(lab: Lab) -> Lab:
    """The lab with no Berth table loaded (whatever the previous test left)."""
    lab.nft("-f", "-", stdin="table inet berth\ndelete table inet berth\n")
    return lab
