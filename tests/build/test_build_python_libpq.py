"""An app that depends on psycopg2 (no binary wheel: built from source against libpq)
builds with the python buildpack and, run, queries a real Postgres through libpq, as it
would on Heroku's stack image; so does one on psycopg 3 without its `binary` extra (pure
Python, loading libpq at run time, which the stand-in base image lacks as the official
slim one does). Slow for a reason: apt installs libpq (and for psycopg2 a compiler and
libpq's headers), pip downloads the drivers and compiles psycopg2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.build.conftest import Lab

pytestmark = [pytest.mark.docker, pytest.mark.slow]

POSTGRES_IMAGE = "berth-stand-in/postgres:15"
CHECK = """import os, psycopg2
connection = psycopg2.connect(os.environ["DATABASE_URL"])
with connection.cursor() as cursor:
    cursor.execute("SELECT 40 + 2")
    print("answer", cursor.fetchone()[0], "libpq", psycopg2.__libpq_version__)
"""

CHECK_PSYCOPG3 = """import os, psycopg
from psycopg import pq
with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
    answer = connection.execute("SELECT 40 + 2").fetchone()[0]
print("answer", answer, "pq", pq.__impl__, "libpq", pq.version())
"""


@pytest.fixture(scope="module")
def postgres(lab: Lab) -> Iterator[str]:
    """A real Postgres on the default bridge; its URL by address."""
    container: Any = lab.client.containers.run(
        POSTGRES_IMAGE, detach=True, labels={"berth-test": "build"},
        environment={"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "shop"})
    try:
        deadline = time.monotonic() + 90
        while container.exec_run(["pg_isready", "-q", "-h", "127.0.0.1", "-U", "shop"]).exit_code:
            assert time.monotonic() < deadline, container.logs()[-2000:]
            time.sleep(0.3)
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        yield f"postgres://shop:pw@{address}:5432/shop"
    finally:
        container.remove(force=True)


def test_psycopg2_from_source_builds_and_reaches_postgres(tmp_path: Path, lab: Lab,
                                                           postgres: str) -> None:
    (tmp_path / "requirements.txt").write_text("psycopg2\n")
    (tmp_path / "check.py").write_text(CHECK)
    run = lab.build(tmp_path, name="libpq")
    assert any("psycopg2 is built from source" in line for line in run.lines), run.lines
    output = lab.client.containers.run(
        run.image.tag, command=["python3", "check.py"], remove=True,
        environment={"DATABASE_URL": postgres}, labels={"berth-test": "build"})
    assert bytes(output).decode().startswith("answer 42 libpq "), output
    # psycopg2 was compiled here, not a wheel bringing its own libpq.
    found = lab.run(run.image.tag, ["sh", "-c", "ls /opt/venv/lib/python3*/site-packages/"])
    assert "psycopg2_binary" not in found and "psycopg2.libs" not in found


def test_psycopg_without_its_binary_extra_loads_libpq_and_reaches_postgres(
        tmp_path: Path, lab: Lab, postgres: str) -> None:
    (tmp_path / "requirements.txt").write_text("psycopg\n")
    (tmp_path / "check.py").write_text(CHECK_PSYCOPG3)
    run = lab.build(tmp_path, name="libpq3")
    assert any("psycopg links libpq: installing it" in line for line in run.lines), run.lines
    output = lab.client.containers.run(
        run.image.tag, command=["python3", "check.py"], remove=True,
        environment={"DATABASE_URL": postgres}, labels={"berth-test": "build"})
    # The pure-Python binding over the system's libpq, not a wheel bringing its own.
    assert bytes(output).decode().startswith("answer 42 pq python libpq "), output
    found = lab.run(run.image.tag, ["sh", "-c", "ls /opt/venv/lib/python3*/site-packages/"])
    assert "psycopg_binary" not in found and "psycopg_c" not in found
