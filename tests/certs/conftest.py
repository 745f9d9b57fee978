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


@pytest.fixture(autouse=True)
def _collect_dropped_ca_connections() -> Iterator[None]:
    """Collect, quietly, the TLS sockets to Pebble that requests/urllib3 inside the acme
    library drop without closing when Pebble restarts under them (seen once in a full
    run, at a random later point when the garbage collector ran). Collecting here, after
    each certificate test, keeps that third-party leak from failing an unrelated test
    under `filterwarnings = error`; Berth's own sockets are checked everywhere else."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
