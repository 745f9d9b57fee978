"""Fixtures of the certificate tests: real Pebble + challtestsrv, a real app upstream.

`pebble` starts Pebble lazily for a given HTTP-01 port (the proxy's HTTP port in the
end-to-end tests) and stops every instance at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.certs.pebble import Pebble

StartPebble = Callable[..., Pebble]


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[StartPebble]:
    started: list[Pebble] = []

    def start(http_port: int, validity: int | None = None) -> Pebble:
        server = Pebble(tmp_path / f"pebble{len(started)}", http_port, validity).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
