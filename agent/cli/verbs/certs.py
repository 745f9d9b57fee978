"""Verbs for certificates: certs, certs:renew, certs:add, certs:remove."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.client import path
from agent.cli.registry import JSON, Context, Verb, arg


def show(ctx: Context, args: argparse.Namespace) -> int:
    query = {"app": args.app} if args.app else None
    data = ctx.client.call("GET", "/certs", query=query)
    if args.json:
        return ctx.json(data["certificates"])
    ctx.out.write(data["text"])
    return 0


def renew(ctx: Context, args: argparse.Namespace) -> int:
    """Exits 1 when a renewal failed, so scripts and cron notice."""
    data = ctx.client.call("POST", "/certs/renew",
                           payload={"target": args.target, "force": args.force})
    ctx.out.write(data["text"])
    failed = failed_renewals(data["certificates"])
    for line in failed:
        ctx.err.write(f"error: {line}\n")
    return 1 if failed else 0


def failed_renewals(certificates: list[dict[str, Any]]) -> list[str]:
    """One line per domain whose certificate could not be renewed (pure)."""
    return [f"{c['domain']}: renewal failed: {c.get('last_error') or c['state']}"
            for c in certificates if c.get("state") in ("failing", "expired")]


def add(ctx: Context, args: argparse.Namespace) -> int:
    pem = ctx.stdin.read(256 * 1024 + 1)
    data = ctx.client.call_raw("POST", path("apps", args.app, "certs"), pem)
    ctx.out.write(data["text"])
    return 0


def remove(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("DELETE", path("apps", args.app, "certs"))
    ctx.print(f"Removed {args.app}'s own certificate; its domains go back to automatic "
              "certificates")
    ctx.out.write(data["text"])
    return 0


VERBS = [
    Verb("certs", "per domain: issuer, expiry, days left, next renewal, last error", show,
         [arg("app", nargs="?", metavar="APP", help="only this app's domains"), JSON]),
    Verb("certs:renew", "renew an app's or a domain's certificates now (when due)", renew,
         [arg("target", metavar="APP|DOMAIN"),
          arg("--force", action="store_true", help="renew even when not due")]),
    Verb("certs:add", "serve your own certificate for an app (PEM chain and key on stdin)",
         add, [arg("app", metavar="APP")]),
    Verb("certs:remove", "remove an app's own certificate (back to automatic ones)", remove,
         [arg("app", metavar="APP")]),
]
