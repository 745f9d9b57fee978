"""Verbs for apps: apps, apps:create, apps:info, apps:set, apps:destroy."""

from __future__ import annotations

import argparse
import time
from typing import Any

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, follow, table
from agent.errors import BerthError, echo


def apps(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.client.call("GET", "/apps")
    if args.json:
        return ctx.json(rows)
    if not rows:
        ctx.print("No apps yet. Create one with a push: git push berth@HOST:APP main")
        return 0
    table(ctx, ["APP", "RELEASE", "STATE", "BACKUPS", "DOMAINS"], [
        (r["name"], f"v{r['release']}" if r["release"] else "-",
         "unreadable" if r.get("error") else "stopped" if r["stopped"]
         else ("running" if r["release"] else "not deployed"),
         _backups(r), " ".join(r["domains"]) or "-")
        for r in rows
    ])
    for r in rows:
        for problem in r.get("backup_problems") or []:
            what = {"failed": "last scheduled backup failed", "overdue": "backup overdue",
                    "local-only": "backups kept on this server only"}.get(
                        problem["problem"], problem["problem"])
            ctx.print(f"{r['name']}: {problem['addon']}: {what}: {problem['detail']} "
                      f"(berth addons {r['name']})")
    return 0


def _backups(row: dict[str, Any]) -> str:
    """ok, -, or the add-ons whose backups need attention: `postgres FAILED`."""
    problems = row.get("backup_problems") or []
    if problems:
        return ", ".join(f"{p['addon']} {p['problem'].upper()}" for p in problems)
    return "ok" if row.get("addons") else "-"


def create(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.call("POST", "/apps", payload={"name": args.app})
    ctx.print(f"Created {info['name']}. Push to deploy: git push berth@HOST:{info['name']} main")
    return 0


def info(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app))
    if args.json:
        return ctx.json(data)
    ctx.print(f"=== {data['name']}")
    release = f"v{data['release']} ({data['git_sha'][:7]})" if data["release"] else "not deployed"
    rows = [
        ("Release", release),
        ("State", "stopped" if data["stopped"] else "running" if data["release"] else "-"),
        ("Domains", " ".join(data["domains"]) or "-"),
        ("Formation", " ".join(f"{k}={v}" for k, v in sorted(data["formation"].items())) or "-"),
        ("Settings", " ".join(f"{k.replace('_', '-')}={v}"
                              for k, v in sorted(data["settings"].items())) or "defaults"),
        ("Storage", " ".join(m["path"] for m in data.get("storage", [])) or "-"),
        ("Repository", data["repo"]),
        ("Created", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data["created_at"]))),
    ]
    limits = data.get("limits") or {}
    if limits:
        rows.append(("Limits", "; ".join(f"{p}: {text}" for p, text in limits.items())))
    traffic = data.get("traffic")
    if traffic:
        rows.append(("Traffic", (f"{traffic['requests']} requests "
                                 f"(2xx {traffic['status_2xx']}, 3xx {traffic['status_3xx']}, "
                                 f"4xx {traffic['status_4xx']}, 5xx {traffic['status_5xx']}), "
                                 f"{traffic['in_flight']} in flight, "
                                 f"{traffic['upstream_errors']} upstream errors")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        ctx.print(f"{key + ':':<{width + 2}}{value}")
    if data["events"]:
        ctx.print("Recent events:")
        for item in data["events"]:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["time"]))
            message = str(item["message"]).replace("\n", "\n    ")  # a crash's last lines
            ctx.print(f"  {stamp}  {item['kind']}: {message}")
    return 0


def settings(ctx: Context, args: argparse.Namespace) -> int:
    changes = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BerthError(f"expected KEY=VALUE, got {echo(pair)}")
        changes[key] = value
    result = ctx.client.call("PATCH", path("apps", args.app, "settings"), payload=changes)
    shown = " ".join(f"{k.replace('_', '-')}={v}" for k, v in sorted(result.items()))
    ctx.print(f"{args.app}: {shown or 'all settings at their defaults'}")
    return 0


def destroy(ctx: Context, args: argparse.Namespace) -> int:
    if args.confirm != args.app:
        raise BerthError(f"this removes {args.app}'s containers, images, repository and data; "
                         f"run again with --confirm {args.app}")
    return follow(ctx, ctx.client.stream("DELETE", path("apps", args.app),
                                         query={"confirm": args.confirm}))


VERBS = [
    Verb("apps", "list apps", apps, [JSON]),
    Verb("apps:create", "create an app (a first push creates it too)", create, [APP]),
    Verb("apps:info", "show an app's release, domains, formation and recent events", info,
         [APP, JSON]),
    Verb("apps:set", "change an app's settings", settings,
         [APP, arg("pairs", nargs="+", metavar="KEY=VALUE")],
         usage_note="keys: deploy-branch (default main or master), restart-policy "
                    "(no|always|unless-stopped|on-failure[:N]), max-body (e.g. 100m), "
                    "hsts (on|off), acme (on|off), health-timeout (seconds). "
                    "An empty value restores the default."),
    Verb("apps:destroy", "remove an app: containers, images, repository, routes, data",
         destroy, [APP, arg("--confirm", metavar="APP", help="the app's name, again")]),
]
