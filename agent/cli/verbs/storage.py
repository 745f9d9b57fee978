"""Verbs for persistent storage: storage, storage:mount, storage:unmount."""

from __future__ import annotations

import argparse

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Handler, Verb, arg, follow, table

PATH = arg("path", metavar="PATH", help="a container path, e.g. /app/data")
NO_RESTART = arg("--no-restart", action="store_true",
                 help="do not restart now; the next deploy or ps:restart picks it up")


def storage(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app, "storage"))
    if args.json:
        return ctx.json(data)
    if not data["mounts"]:
        ctx.print(f"{args.app} keeps nothing between containers: berth storage:mount {args.app} /app/data")
        return 0
    table(ctx, ["PATH", "HOST DIRECTORY"], [(m["path"], m["host"]) for m in data["mounts"]])
    return 0


def change(method: str) -> Handler:
    """storage:mount (POST) and storage:unmount (DELETE): the change, then the restart."""

    def run(ctx: Context, args: argparse.Namespace) -> int:
        return follow(ctx, ctx.client.stream(
            method, path("apps", args.app, "storage"),
            payload={"path": args.path, "restart": not args.no_restart}))

    return run


VERBS = [
    Verb("storage", "list an app's persistent storage", storage, [APP, JSON]),
    Verb("storage:mount", "keep a container path across deploys and restarts (restarts the app)",
         change("POST"), [APP, PATH, NO_RESTART]),
    Verb("storage:unmount", "stop mounting a path (its data stays on disk)",
         change("DELETE"), [APP, PATH, NO_RESTART]),
]
