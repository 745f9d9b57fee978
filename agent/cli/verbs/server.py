"""Verbs for the whole server: backup (an archive of everything needed to rebuild it) and
restore (that archive put back, on a freshly installed Berth)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from agent.cli.client import path
from agent.cli.registry import Context, Verb, arg, follow
from agent.errors import BerthError

_CHUNK = 1024 * 1024


def _binary(stream: Any, fallback: BinaryIO) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else fallback


def _created(ctx: Context, events: Iterator[dict[str, Any]]) -> str:
    """Progress to stderr (stdout may be the archive); the archive's name."""
    for item in events:
        if "line" in item:
            ctx.err.write(item["line"] + "\n")
            ctx.err.flush()
        elif "error" in item:
            raise BerthError(item["error"])
        elif "result" in item:
            return str(item["result"]["name"])
    raise BerthError("the agent ended the answer early")


def backup(ctx: Context, args: argparse.Namespace) -> int:
    if args.output and ctx.remote:
        raise BerthError("over SSH the archive comes on stdout: "
                         "ssh berth@server backup > server.tar")
    if not args.output and ctx.out.isatty():
        raise BerthError("the archive is binary: berth backup --output FILE, "
                         "or redirect stdout to a file")
    name = _created(ctx, ctx.client.stream("POST", "/server/backups"))
    pieces = ctx.client.download(path("server", "backups", name))
    if args.output:
        _write_file(Path(args.output), pieces)
        ctx.err.write(f"-----> Written to {args.output}\n")
        return 0
    out = _binary(ctx.out, sys.stdout.buffer)
    ctx.out.flush()
    for piece in pieces:
        out.write(piece)
    out.flush()
    return 0


def _write_file(target: Path, pieces: Iterator[bytes]) -> None:
    """The archive to `target` (0600: it holds the apps' secrets), complete or not at
    all."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BerthError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    with source:
        while chunk := source.read(_CHUNK):
            yield chunk


def restore(ctx: Context, args: argparse.Namespace) -> int:
    if args.file == "-":
        source = ctx.stdin
    elif ctx.remote:
        raise BerthError("over SSH the archive comes on stdin: "
                         "ssh berth@server restore - < server.tar")
    else:
        try:
            source = open(args.file, "rb")  # noqa: SIM115 (closed by _chunks)
        except OSError as exc:
            raise BerthError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    return follow(ctx, ctx.client.stream("POST", "/server/restore",
                                         query={"force": "1"} if args.force else None,
                                         body=_chunks(source)))


VERBS = [
    Verb("backup", "an archive of the whole server: state, repositories, config, keys, "
         "certificates, storage, fresh add-on dumps, berth.toml", backup,
         [arg("--output", "-o", metavar="FILE", help="write it there (default: stdout)")]),
    Verb("restore", "put a server archive back (on a freshly installed Berth) and start "
         "every app", restore,
         [arg("file", metavar="FILE", help="the archive (- for stdin)"),
          arg("--force", action="store_true",
              help="replace this server's apps (their data is kept aside)")]),
]
