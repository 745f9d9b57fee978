"""Verbs for the audit trail: events (who changed what, when, and how it ended)."""

from __future__ import annotations

import argparse
import time

from agent.cli.registry import JSON, Context, Verb, arg, table


def events(ctx: Context, args: argparse.Namespace) -> int:
    query = {"limit": str(args.num)}
    if args.app:
        query["app"] = args.app
    rows = ctx.client.call("GET", "/events", query=query)
    if args.json:
        return ctx.json(rows)
    table(ctx, ["TIME", "WHO", "VERB", "APP", "OUTCOME"], [
        (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"])), r["actor"], r["verb"],
         r["app"] or "-", r["outcome"])
        for r in reversed(rows)
    ])
    return 0


VERBS = [
    Verb("events", "the audit trail: who changed what (over SSH: which key), and the outcome",
         events, [arg("app", nargs="?", metavar="APP", help="only this app's"), JSON,
                  arg("-n", "--num", type=int, default=50, metavar="N",
                      help="the latest N changes (50)")]),
]
