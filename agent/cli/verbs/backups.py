"""Verbs for backups: backups, backups:capture, backups:download, backups:restore,
backups:verify."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, BinaryIO

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, follow, table
from agent.cli.verbs.addons import size

BACKUP = arg("backup", metavar="ID", help="the backup's id, e.g. b12 (berth backups APP)")


def backups(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.client.call("GET", path("apps", args.app, "backups"))
    if args.json:
        return ctx.json(rows)
    if not rows:
        ctx.print(f"No backups of {args.app} yet: berth backups:capture {args.app}")
        return 0
    table(ctx, ["ID", "ADD-ON", "KIND", "SIZE", "TAKEN", "REASON", "VERSION", "SHA-256",
                "OFF-HOST"], [
        (r["id"], r["addon"], r["kind"], size(r["size"]),
         time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"])), r["reason"],
         r["server_version"], r["sha256"][:16], _offsite(r)) for r in rows])
    for r in rows:
        if r.get("upload_error"):
            ctx.print(f"{r['id']}: not copied off-host after {r['upload_attempts']} upload "
                      f"attempt(s), tried again later: {r['upload_error']}")
    return 0


def _offsite(row: dict[str, Any]) -> str:
    """Where its off-host copy is, or that it has none."""
    if row.get("offsite"):
        return str(row["offsite"])
    return "NOT COPIED OFF-HOST" if row.get("offsite_target") else "- (no target set)"


def capture(ctx: Context, args: argparse.Namespace) -> int:
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "backups"),
                                         payload={"addon": args.name}))


def _binary_out(ctx: Context) -> BinaryIO:
    buffer = getattr(ctx.out, "buffer", None)
    return buffer if buffer is not None else sys.stdout.buffer


def download(ctx: Context, args: argparse.Namespace) -> int:
    """The backup's bytes to stdout: `ssh berth@host backups:download app b3 > app.dump`."""
    out = _binary_out(ctx)
    ctx.out.flush()
    for piece in ctx.client.download(path("apps", args.app, "backups", args.backup, "download")):
        out.write(piece)
    out.flush()
    return 0


def restore(ctx: Context, args: argparse.Namespace) -> int:
    return follow(ctx, ctx.client.stream(
        "POST", path("apps", args.app, "backups", args.backup, "restore"),
        query={"confirm": args.confirm or ""}))


def verify(ctx: Context, args: argparse.Namespace) -> int:
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "backups", args.backup, "verify")))


def set_schedule(ctx: Context, args: argparse.Namespace) -> int:
    status = ctx.client.call("PUT", path("apps", args.app, "addons", args.name, "schedule"),
                             payload={"at": args.at, "keep_daily": args.keep_daily,
                                      "keep_weekly": args.keep_weekly})
    next_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(status["next_backup"]))
    ctx.print(f"{args.name} of {args.app}: daily at {args.at} UTC, keeping {args.keep_daily} "
              f"daily and {args.keep_weekly} weekly; next {next_at}")
    return 0


VERBS = [
    Verb("backups", "list an app's backups", backups, [APP, JSON]),
    Verb("backups:capture", "back up an add-on now (pg_dump -Fc; redis RDB)", capture,
         [APP, arg("name", metavar="NAME", nargs="?", help="the add-on (default: the app's only one)")]),
    Verb("backups:download", "write a backup to stdout", download, [APP, BACKUP]),
    Verb("backups:restore", "restore a backup into its add-on (the app is stopped meanwhile)",
         restore, [APP, BACKUP, arg("--confirm", metavar="APP", help="the app's name, to confirm")]),
    Verb("backups:schedule", "when an add-on is backed up (daily, UTC) and how many are kept",
         set_schedule, [APP, arg("name", metavar="NAME", help="the add-on"),
                        arg("at", metavar="HH:MM", help="the time of day, UTC"),
                        arg("--keep-daily", type=int, default=7, metavar="N"),
                        arg("--keep-weekly", type=int, default=4, metavar="N")]),
    Verb("backups:verify", "restore a backup into a throwaway container and check it", verify,
         [APP, BACKUP]),
]
