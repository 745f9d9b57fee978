"""Verbs for releases and keys: releases, releases:info, rollback, keys*, version."""

from __future__ import annotations

import argparse
import time

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, follow, table
from agent.cli.starthint import restart_hint
from agent.errors import BerthError
from agent.installed import describe_versions, installed_version
from agent.names import check_key_name


def releases(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.client.call("GET", path("apps", args.app, "releases"))
    if args.json:
        return ctx.json(rows)
    if not rows:
        ctx.print(f"{args.app} has no releases yet")
        return 0
    table(ctx, ["VERSION", "STATE", "CREATED", "DESCRIPTION"], [
        (f"v{r['version']}", r["state"],
         time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
         r["description"] + (f" ({r['error'].splitlines()[0]})" if r["error"] else ""))
        for r in rows
    ])
    return 0


def release_info(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app, "releases", args.version))
    if args.json:
        return ctx.json(data)
    ctx.print(f"=== {args.app} v{data['version']}: {data['description']} ({data['state']})")
    if data["error"]:
        ctx.print(f"Error: {data['error']}")
    ctx.print(f"Commit: {data['git_sha'] or '-'}   Built with: {data['builder'] or '-'}")
    ctx.print("Processes: " + ", ".join(f"{k}: {v or '(image CMD)'}"
                                        for k, v in sorted(data["processes"].items())))
    ctx.print(f"Config keys: {' '.join(data['config_keys']) or '-'}")
    ctx.print("--- build log")
    ctx.out.write(data["log"])
    return 0


def rollback(ctx: Context, args: argparse.Namespace) -> int:
    payload = {"version": args.version} if args.version else {}
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "rollback"),
                                         payload=payload))


def keys(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.client.call("GET", "/keys")
    if args.json:
        return ctx.json(rows)
    table(ctx, ["NAME", "FINGERPRINT", "MAY"], [
        (r["name"], r["fingerprint"],
         "everything (admin)" if r.get("admin", True) else "apps " + ",".join(r["apps"]))
        for r in rows])
    return 0


def add_key(ctx: Context, args: argparse.Namespace) -> int:
    check_key_name(args.name)
    if args.admin and args.apps is not None:
        raise BerthError("give --admin or --apps, not both")
    public_key = ctx.stdin.read(16 * 1024).decode("utf-8", "replace")
    apps = None if args.apps is None else [app for app in args.apps.split(",") if app]
    data = ctx.client.call("POST", "/keys", payload={"name": args.name, "public_key": public_key,
                                                     "apps": apps})
    scope = "an admin key" if apps is None else "may use apps " + ",".join(data["apps"])
    ctx.print(f"Added key {data['name']} ({data['fingerprint']}): {scope}")
    return 0


def remove_key(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.call("DELETE", path("keys", check_key_name(args.name)))
    ctx.print(f"Removed key {args.name}")
    return 0


def version(ctx: Context, args: argparse.Namespace) -> int:
    """The installed Berth and the running agent's, with what to do when they differ."""
    try:
        running: str | None = ctx.client.call("GET", "/version")["version"]
    except BerthError as exc:
        running = None
        unreachable = f"agent not reachable ({exc})"
    for line in describe_versions(installed_version(), running, restart_hint()):
        ctx.print(line)
    if running is None:
        ctx.print(unreachable)
    return 0


VERSION_ARG = arg("version", nargs="?", metavar="vN", help="default: the release before the live one")

VERBS = [
    Verb("releases", "list an app's releases", releases, [APP, JSON]),
    Verb("releases:info", "show a release and its build log", release_info,
         [APP, arg("version", metavar="vN"), JSON]),
    Verb("rollback", "make a new release from an earlier one's image and config", rollback,
         [APP, VERSION_ARG]),
    Verb("keys", "list the SSH keys that may push and run verbs", keys, [JSON]),
    Verb("keys:add", "add an SSH public key (read from stdin): an admin key, or one "
         "limited to some apps", add_key,
         [arg("name", metavar="NAME"),
          arg("--admin", action="store_true", help="may do everything (the default)"),
          arg("--apps", metavar="APP,APP", help="may push to and use only these apps")]),
    Verb("keys:remove", "remove an SSH key", remove_key, [arg("name", metavar="NAME")]),
    Verb("version", "print the installed Berth's version and the running agent's", version),
]
