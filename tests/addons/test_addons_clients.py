"""addons:psql and addons:redis-cli attached to a real terminal (a pty made here) on
real add-ons: what is typed reaches the server, its answers come back; without a
terminal, one error line."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pty
import select
import time
from typing import Any

import pytest
from addon_world import World

from agent.cli.registry import Context
from agent.cli.verbs.addons import client
from agent.errors import BerthError

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Rows:
    """The control client as the verb uses it: the app's add-ons, as the API lists them."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def call(self, method: str, url: str, **_: Any) -> Any:
        return self.rows


def in_terminal(rows: list[dict[str, Any]], kind: str, typed: bytes, expect: bytes) -> bytes:
    """Run the verb in a child whose stdin/stdout is a new pty; type, read until `expect`."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the verb execs docker here
        try:  # the pty's own descriptors: pytest has replaced sys.stdin and sys.stdout
            ctx = Context(client=Rows(rows),  # type: ignore[arg-type]
                          stdin=os.fdopen(0, "rb", closefd=False),
                          out=os.fdopen(1, "w", closefd=False))
            client(kind)(ctx, argparse.Namespace(app="x", name=None))
        except BaseException as exc:
            os.write(1, f"child failed: {exc}".encode())
        finally:
            os._exit(3)
    seen = b""
    deadline = time.monotonic() + 60
    sent = False
    asked = 0
    try:
        while time.monotonic() < deadline and expect not in seen:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    piece = os.read(fd, 65536)
                except OSError:
                    break
                seen += piece
                for _ in range(piece.count(b"\x1b[6n")):  # a line editor asks where
                    asked += 1                              # the cursor is, then the width
                    os.write(fd, b"\x1b[1;1R" if asked % 2 else b"\x1b[1;80R")
            if not sent and (b"=#" in seen or b"> " in seen):
                os.write(fd, typed)
                sent = True
    finally:
        os.kill(pid, 9)  # the client, if it has not ended yet
        os.waitpid(pid, 0)
        os.close(fd)
    return seen


def test_psql_and_redis_cli_answer_what_is_typed(world: World) -> None:
    world.apps.create(world.shop)
    pg = asyncio.run(world.service.create(world.shop, "postgres", None, None, world.out()))
    redis = asyncio.run(world.service.create(world.shop, "redis", None, None, world.out()))
    world.redis(redis.url, "SET", "greeting", "hello-from-redis")
    rows = [pg.public(), redis.public()]
    seen = in_terminal(rows, "postgres", b"\\pset pager off\nSELECT 40 + 2 AS answer;\n\\q\n", b"42")
    assert b"42" in seen, seen
    seen = in_terminal(rows, "redis", b"GET greeting\rquit\r", b"hello-from-redis")
    assert b"hello-from-redis" in seen, seen
    assert redis.password.encode() not in seen


def test_without_a_terminal_it_is_one_error(world: World) -> None:
    rows = [{"kind": "postgres", "name": "postgres", "container": "c", "user": "u"}]
    ctx = Context(client=Rows(rows), stdin=io.BytesIO())  # type: ignore[arg-type]
    with pytest.raises(BerthError, match="needs a terminal"):
        client("postgres")(ctx, argparse.Namespace(app="x", name=None))
    with pytest.raises(BerthError, match="no redis"):
        client("redis")(ctx, argparse.Namespace(app="x", name=None))
