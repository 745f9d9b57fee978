"""Verbs for domains, processes and logs: domains*, ps*, run, logs."""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import select
import shlex
import threading
from typing import Any, TextIO

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, duration, follow, table
from agent.errors import BerthError, echo

DOMAIN = arg("domain", metavar="DOMAIN")


def domains(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app, "domains"))
    if args.json:
        return ctx.json(data)
    if not data["domains"]:
        ctx.print(f"{args.app} has no domain: berth domains:add {args.app} DOMAIN")
    for domain in data["domains"]:
        ctx.print(domain)
    return 0


def add_domain(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("POST", path("apps", args.app, "domains"),
                           payload={"domain": args.domain})
    ctx.print(f"Added {args.domain} to {args.app}; it now answers on: {' '.join(data['domains'])}")
    return 0


def remove_domain(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.call("DELETE", path("apps", args.app, "domains", args.domain))
    ctx.print(f"Removed {args.domain} from {args.app}")
    return 0


def ps(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.call("GET", path("apps", args.app, "ps"))
    if args.json:
        return ctx.json(data)
    formation = " ".join(f"{k}={v}" for k, v in sorted(data["formation"].items()))
    ctx.print(f"=== {args.app}: {'stopped' if data['stopped'] else formation or 'not deployed'}")
    table(ctx, ["INSTANCE", "RELEASE", "STATE", "UPTIME", "RESTARTS"], [
        (r["dyno"], f"v{r['release']}", r["state"], duration(r["uptime"]), r["restarts"])
        for r in data["instances"]
    ])
    return 0


SCALE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)=([0-9]+)")


def scale(ctx: Context, args: argparse.Namespace) -> int:
    changes = {}
    for pair in args.pairs:
        match = SCALE.fullmatch(pair)
        if not match:
            raise BerthError(f"expected TYPE=COUNT such as web=2, got {echo(pair)}")
        changes[match.group(1)] = int(match.group(2))
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "ps", "scale"),
                                         payload=changes))


def action(name: str) -> Verb:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "ps", name)))

    summaries = {
        "rebuild": "build the live release's commit again and release it (a pulled "
                   "base image, buildpack or build-time config changes)",
        "restart": "replace every instance of the live release (zero downtime)",
        "stop": "stop every instance (the app answers 503 until ps:start)",
        "start": "start the live release's instances again",
    }
    return Verb(f"ps:{name}", summaries[name], run, [APP])


def limit(ctx: Context, args: argparse.Namespace) -> int:
    """Without limits: what each process type runs under; with: set them (a restart
    follows)."""
    if not args.pairs:
        if args.process is not None:
            raise BerthError(f"give limits for {args.process}, e.g. memory=512m cpus=1 pids=256")
        data = ctx.client.call("GET", path("apps", args.app, "limits"))
        if args.json:
            return ctx.json(data)
        for process, text in data["limits"].items():
            ctx.print(f"{process + ':':<12}{text}")
        return 0
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "limits"),
                                         payload={"process": args.process, "limits": args.pairs}))


TIMED_OUT = 124  # what timeout(1) exits with
HUNG_UP = 129  # 128 + SIGHUP


def run(ctx: Context, args: argparse.Namespace) -> int:
    """The command's output as it comes, then its exit status as ours."""
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not words:
        raise BerthError(f"nothing to run: berth run {args.app} COMMAND (e.g. python manage.py migrate)")
    if not args.no_tty and _terminal(ctx.stdin) and _terminal(ctx.out):
        from agent.cli.attach import run_with_terminal

        return run_with_terminal(ctx.client, args.app, command_line(words),
                                 ctx.stdin.fileno(), ctx.out.fileno())
    exit_on_hangup(ctx.out)
    events = ctx.client.stream("POST", path("apps", args.app, "run"),
                               payload={"command": command_line(words)})
    for item in events:
        if "out" in item or "err" in item:
            _write_output(ctx, item)
        elif "line" in item:
            ctx.print(item["line"])
        elif "error" in item:
            raise BerthError(item["error"])
        elif "result" in item:
            code = int(item["result"]["exit_code"])
            return code if 0 <= code <= 255 else TIMED_OUT
    raise BerthError("the agent ended the answer early")


def _write_output(ctx: Context, item: dict[str, str]) -> None:
    """A piece of the command's stdout or stderr, byte for byte (a text stream without
    bytes underneath, as in tests, gets it decoded)."""
    stream = ctx.out if "out" in item else ctx.err
    data = base64.b64decode(item.get("out") or item.get("err") or "")
    binary = getattr(stream, "buffer", None)
    stream.flush()
    if binary is not None:
        binary.write(data)
        binary.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


def _terminal(stream: object) -> bool:
    try:
        return os.isatty(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


_NEEDS_QUOTES = re.compile(r"[\s'\"\\]")


def command_line(words: list[str]) -> str:
    """The shell command line `run` sends, as `heroku run` builds it: one word is a whole
    command line; of several, those with spaces or quotes are quoted (they were one
    argument), the rest pass as they are (`$VAR`, `;`, `&&` keep their meaning)."""
    if len(words) == 1:
        return words[0]
    return " ".join(shlex.quote(w) if not w or _NEEDS_QUOTES.search(w) else w for w in words)


def exit_on_hangup(out: TextIO) -> None:
    """Leave as soon as whoever reads `out` is gone, so the agent stops the command.

    Over SSH without a terminal, sshd does not signal the command when the client hangs
    up; the loss shows only at the next write, and a command quiet for an hour would run
    for an hour. A thread watches the output's far end instead (a terminal or a file
    never hangs up; a pipe or socket does)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return
    if os.isatty(fd):
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
        while True:
            for _, events in poller.poll():
                if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    os._exit(HUNG_UP)

    threading.Thread(target=watch, name="hangup-watch", daemon=True).start()


def log_source(item: dict[str, Any]) -> str:
    """`web.1 v7`: the dyno a line came from and the release it ran (when known)."""
    release = item.get("release")
    if isinstance(release, int) and not isinstance(release, bool) and release > 0:
        return f"{item['source']} v{release}"
    return str(item["source"])


def logs(ctx: Context, args: argparse.Namespace) -> int:
    query = {"lines": str(args.num), "follow": "1" if args.follow else "0"}
    if args.follow:
        exit_on_hangup(ctx.out)  # a quiet app would keep a gone client's follow open
    if args.process:
        query["process"] = args.process
    try:
        for item in ctx.client.stream("GET", path("apps", args.app, "logs"), query=query):
            ctx.print(f"{item['time'][:19]} {args.app}[{log_source(item)}]: {item['text']}")
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
    Verb("ps:limit", "show or set an app's memory, CPU and process limits per process type "
         "(`release` and `run` for one-offs; `memory=` goes back to the default)", limit,
         [APP, JSON, arg("process", nargs="?", metavar="TYPE"),
          arg("pairs", nargs="*", metavar="KEY=VALUE")]),
    action("restart"),
    action("rebuild"),
    action("stop"),
    action("start"),
    Verb("run", "run a command once in a new container of the live release (from a "
         "terminal, on the server or over ssh -t: attached to it, e.g. run APP bash)", run,
         [APP, arg("--no-tty", action="store_true",
                   help="no terminal even from one: output only, as in scripts"),
          arg("command", nargs=argparse.REMAINDER, metavar="COMMAND")]),
    Verb("logs", "show an app's logs", logs, [
        APP,
        arg("-f", "--follow", action="store_true", help="keep printing new lines"),
        arg("-n", "--num", type=int, default=100, metavar="N", help="lines per instance (100)"),
        arg("--process", "-p", metavar="TYPE", help="only this process type"),
    ]),
]
