"""Verbs for add-ons: addons, addons:create, addons:info, addons:restart, addons:destroy."""

from __future__ import annotations

import argparse
import os
from typing import Any

from agent.addons.containers import client_command
from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Handler, Verb, arg, duration, follow, table
from agent.errors import BerthError

NAME = arg("name", metavar="NAME", help="the add-on's name (berth addons APP)")


def size(count: int | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return "-"


def _last_backup(row: dict[str, Any]) -> str:
    """b3 (5h02m ago), with the last scheduled backup's failure and an overdue flag."""
    latest = row.get("last_backup")
    text = f"{latest['id']} ({duration(row['last_backup_age'])} ago)" if latest else "never"
    if row.get("backup_overdue"):
        text += ", OVERDUE"
    if row.get("backup_error"):
        text += f", LAST FAILED: {row['backup_error']}"
    if row.get("not_copied"):
        text += f", NOT COPIED OFF-HOST: {' '.join(row['not_copied']['ids'])}"
    return text


def addons(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.client.call("GET", path("apps", args.app, "addons") if args.app else "/addons")
    if args.json:
        return ctx.json(rows)
    if not rows:
        ctx.print(f"No add-ons. Create one: berth addons:create {args.app or 'APP'} postgres")
        return 0
    table(ctx, ["APP", "NAME", "KIND", "VERSION", "STATE", "SIZE", "VARIABLE", "LAST BACKUP"], [
        (r["app"], r["name"], r["kind"], r["version"], r["state"], size(r["size"]),
         r["variable"], _last_backup(r)) for r in rows])
    return 0


def create(ctx: Context, args: argparse.Namespace) -> int:
    payload = {"kind": args.kind, "version": args.version, "as": args.alias}
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "addons"), payload=payload))


def info(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app, "addons", args.name))
    if args.json:
        return ctx.json(data)
    ctx.print(f"=== {data['name']} of {data['app']}")
    rows = [("Kind", f"{data['kind']} {data['version']} ({data['image']})"),
            ("State", data["state"]), ("Sets", data["variable"]),
            ("Host", data["container"]), ("Data", f"{data['data']} ({size(data['size'])})"),
            ("Last backup", _last_backup(data))]
    if data.get("schedule"):
        plan = data["schedule"]
        rows.append(("Schedule", (f"daily at {plan['at']} UTC, keeping {plan['keep_daily']} "
                                  f"daily and {plan['keep_weekly']} weekly")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        ctx.print(f"{key + ':':<{width + 2}}{value}")
    return 0


def restart(ctx: Context, args: argparse.Namespace) -> int:
    return follow(ctx, ctx.client.stream(
        "POST", path("apps", args.app, "addons", args.name, "restart")))


def destroy(ctx: Context, args: argparse.Namespace) -> int:
    query = {"confirm": args.confirm or "", "backup": "0" if args.no_backup else "1"}
    return follow(ctx, ctx.client.stream("DELETE", path("apps", args.app, "addons", args.name),
                                         query=query))


def client(kind: str) -> Handler:
    """addons:psql / addons:redis-cli: the add-on's own client, attached to this
    terminal: on the server, as root, `docker exec -it`; over `ssh -t` (as the berth
    user, which may not use Docker) through the agent (agent.cli.attach)."""
    verb = f"addons:{'psql' if kind == 'postgres' else 'redis-cli'}"

    def run(ctx: Context, args: argparse.Namespace) -> int:
        rows = [r for r in ctx.client.call("GET", path("apps", args.app, "addons"))
                if r["kind"] == kind and (args.name is None or r["name"] == args.name)]
        if len(rows) != 1:
            which = f"named {args.name}" if args.name else "(name one)" if rows else ""
            raise BerthError(f"{args.app} has {len(rows) or 'no'} {kind} add-on(s) {which}".strip())
        if not ctx.stdin.isatty():
            how = (f"ssh -t berth@HOST {verb} {args.app}" if ctx.remote
                   else "run it from a terminal")
            raise BerthError(f"{verb} needs a terminal: {how}")
        if ctx.remote:
            from agent.cli.attach import attach

            return attach(ctx.client, path("apps", args.app, "addons", rows[0]["name"], "attach"),
                          {"term": ctx.environ.get("TERM", "")}, ctx.stdin.fileno(),
                          ctx.out.fileno())
        argv = client_command(kind, rows[0]["container"], rows[0]["user"])
        ctx.out.flush()
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            raise BerthError(f"cannot run docker: {exc.strerror or exc}") from None

    return run


VERBS = [
    Verb("addons", "list add-ons: of one app, or of every app", addons,
         [arg("app", metavar="APP", nargs="?", help="the app's name (default: every app)"), JSON]),
    Verb("addons:create", "create a postgres or redis add-on; sets DATABASE_URL / REDIS_URL "
         "(a new release, zero downtime)", create,
         [APP, arg("kind", metavar="KIND", choices=["postgres", "redis"], help="postgres or redis"),
          arg("--version", help="the server's version, e.g. 16 (default: berth.toml's)"),
          arg("--as", dest="alias", metavar="NAME", help="name it and set NAME_URL")]),
    Verb("addons:info", "one add-on: kind, state, variable, data on disk, last backup", info,
         [APP, NAME, JSON]),
    Verb("addons:psql", "psql into the app's postgres add-on, from a terminal (over SSH: ssh -t)",
         client("postgres"), [APP, arg("name", metavar="NAME", nargs="?",
                                       help="the add-on (default: the app's only postgres)")]),
    Verb("addons:redis-cli", "redis-cli into the app's redis add-on, from a terminal (ssh -t)",
         client("redis"), [APP, arg("name", metavar="NAME", nargs="?",
                                    help="the add-on (default: the app's only redis)")]),
    Verb("addons:restart", "restart an add-on's container", restart, [APP, NAME]),
    Verb("addons:destroy", "take a final backup, unset its variable, remove its container and data",
         destroy, [APP, NAME, arg("--confirm", metavar="APP", help="the app's name, to confirm"),
                   arg("--no-backup", action="store_true", help="no final backup")]),
]
