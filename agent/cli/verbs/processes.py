"""Verbs for domains, processes and logs: domains*, ps*, logs."""

from __future__ import annotations

import argparse
import re

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, duration, follow, table
from agent.errors import BerthError

DOMAIN = arg("domain", metavar="DOMAIN")


def domains(ctx: Context, a: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", a.app, "domains"))
    if a.json:
        return ctx.json(data)
    if not data["domains"]:
        ctx.print(f"{a.app} has no domain: berth domains:add {a.app} DOMAIN")
    for domain in data["domains"]:
        ctx.print(domain)
    return 0


def add_domain(ctx: Context, a: argparse.Namespace) -> int:
    data = ctx.client.call("POST", path("apps", a.app, "domains"), payload={"domain": a.domain})
    ctx.print(f"Added {a.domain} to {a.app}; it now answers on: {' '.join(data['domains'])}")
    return 0


def remove_domain(ctx: Context, a: argparse.Namespace) -> int:
    ctx.client.call("DELETE", path("apps", a.app, "domains", a.domain))
    ctx.print(f"Removed {a.domain} from {a.app}")
    return 0


def ps(ctx: Context, a: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", a.app, "ps"))
    if a.json:
        return ctx.json(data)
    formation = " ".join(f"{k}={v}" for k, v in sorted(data["formation"].items()))
    ctx.print(f"=== {a.app}: {'stopped' if data['stopped'] else formation or 'not deployed'}")
    table(ctx, ["INSTANCE", "RELEASE", "STATE", "UPTIME", "RESTARTS"], [
        (r["dyno"], f"v{r['release']}", r["state"], duration(r["uptime"]), r["restarts"])
        for r in data["instances"]
    ])
    return 0


SCALE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)=([0-9]+)")


def scale(ctx: Context, a: argparse.Namespace) -> int:
    changes = {}
    for pair in a.pairs:
        match = SCALE.fullmatch(pair)
        if not match:
            raise BerthError(f"expected TYPE=COUNT such as web=2, got {pair!r}")
        changes[match.group(1)] = int(match.group(2))
    return follow(ctx, ctx.client.stream("POST", path("apps", a.app, "ps", "scale"),
                                         payload=changes))


def action(name: str) -> Verb:
    def run(ctx: Context, a: argparse.Namespace) -> int:
        return follow(ctx, ctx.client.stream("POST", path("apps", a.app, "ps", name)))

    summaries = {
        "restart": "replace every instance of the live release (zero downtime)",
        "stop": "stop every instance (the app answers 503 until ps:start)",
        "start": "start the live release's instances again",
    }
    return Verb(f"ps:{name}", summaries[name], run, [APP])


def logs(ctx: Context, a: argparse.Namespace) -> int:
    query = {"lines": str(a.num), "follow": "1" if a.follow else "0"}
    if a.process:
        query["process"] = a.process
    try:
        for item in ctx.client.stream("GET", path("apps", a.app, "logs"), query=query):
            ctx.print(f"{item['time'][:19]} {a.app}[{item['source']}]: {item['text']}")
    except KeyboardInterrupt:
        return 0
    return 0


VERBS = [
    Verb("domains", "list an app's domains", domains, [APP, JSON]),
    Verb("domains:add", "serve an app on a domain (a certificate follows)", add_domain,
         [APP, DOMAIN]),
    Verb("domains:remove", "stop serving an app on a domain", remove_domain, [APP, DOMAIN]),
    Verb("ps", "list an app's instances: state, uptime, restarts", ps, [APP, JSON]),
    Verb("ps:scale", "set how many instances of each process type run", scale,
         [APP, arg("pairs", nargs="+", metavar="TYPE=COUNT")]),
    action("restart"),
    action("stop"),
    action("start"),
    Verb("logs", "show an app's logs", logs, [
        APP,
        arg("-f", "--follow", action="store_true", help="keep printing new lines"),
        arg("-n", "--num", type=int, default=100, metavar="N", help="lines per instance (100)"),
        arg("--process", "-p", metavar="TYPE", help="only this process type"),
    ]),
]
