"""Verbs for config vars: config, config:get, config:set, config:unset.

Values are taken exactly as given: spaces, quotes, newlines and unicode survive. Over
SSH, where the remote command is one string, quote as for any ssh command, or pass
base64 values with --encoded.
"""

from __future__ import annotations

import argparse
import base64

from agent.cli.client import path
from agent.cli.registry import APP, JSON, Context, Verb, arg, follow
from agent.errors import BerthError, echo
from agent.names import check_config_key

NO_RESTART = arg("--no-restart", action="store_true",
                 help="store the change without making a release now")


def show(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.client.call("GET", path("apps", args.app, "config"))
    if args.json:
        return ctx.json(config)
    if not config:
        ctx.print(f"{args.app} has no config vars")
        return 0
    ctx.print(f"=== {args.app} config vars")
    width = max(len(k) for k in config)
    for key, value in config.items():
        ctx.print(f"{key + ':':<{width + 2}}{value}")
    return 0


def get(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.client.call("GET", path("apps", args.app, "config"))
    if args.key not in config:
        raise BerthError(f"{args.app} has no config var {echo(args.key)}")
    ctx.out.write(config[args.key] + "\n")
    return 0


def parse_pairs(pairs: list[str], *, encoded: bool) -> dict[str, str]:
    """KEY=VALUE arguments -> a mapping; the value is everything after the first '='."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BerthError(f"expected KEY=VALUE, got {echo(pair)} (no '=')")
        check_config_key(key)
        if encoded:
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8")
            except ValueError:  # bad base64, non-ASCII input, or bytes that are not UTF-8
                raise BerthError(f"the value of {key} is not base64 of UTF-8 text") from None
        if "\0" in value:
            raise BerthError(f"the value of {key} contains a NUL byte")
        result[key] = value
    return result


def set_vars(ctx: Context, args: argparse.Namespace) -> int:
    changes = parse_pairs(args.pairs, encoded=args.encoded)
    return follow(ctx, ctx.client.stream("POST", path("apps", args.app, "config"),
                                         payload={"set": changes, "restart": not args.no_restart}))


def unset_vars(ctx: Context, args: argparse.Namespace) -> int:
    for key in args.keys:
        check_config_key(key)
    return follow(ctx, ctx.client.stream(
        "POST", path("apps", args.app, "config"),
        payload={"unset": args.keys, "restart": not args.no_restart}))


VERBS = [
    Verb("config", "show an app's config vars", show, [APP, JSON]),
    Verb("config:get", "print one config var's value", get, [APP, arg("key", metavar="KEY")]),
    Verb("config:set", "set config vars; makes a new release (zero downtime)", set_vars,
         [APP, arg("pairs", nargs="+", metavar="KEY=VALUE"), NO_RESTART,
          arg("--encoded", action="store_true", help="values are base64 (for newlines over SSH)")]),
    Verb("config:unset", "remove config vars; makes a new release (zero downtime)", unset_vars,
         [APP, arg("keys", nargs="+", metavar="KEY"), NO_RESTART]),
]
