"""Verbs for the host firewall: firewall, firewall:apply, firewall:confirm,
firewall:disable. The SSH connection the command came over (SSH_CONNECTION) is passed
along, so its port is never locked out."""

from __future__ import annotations

import argparse

from agent.cli.registry import JSON, Context, Verb, arg


def _connection(ctx: Context) -> str:
    return ctx.environ.get("SSH_CONNECTION", "")


def status(ctx: Context, args: argparse.Namespace) -> int:
    query = {"ssh_connection": _connection(ctx)} if _connection(ctx) else None
    data = ctx.client.call("GET", "/firewall", query=query)
    if args.json:
        return ctx.json(data)
    ctx.print(data["text"])
    return 0


def apply(ctx: Context, args: argparse.Namespace) -> int:
    payload = {"ssh_connection": _connection(ctx), "dry_run": args.dry_run,
               "confirm_within": args.confirm_within}
    data = ctx.client.call("POST", "/firewall/apply", payload=payload)
    if args.json:
        return ctx.json(data)
    ctx.out.write(data["text"].rstrip("\n") + "\n")
    return 0


def confirm(ctx: Context, args: argparse.Namespace) -> int:
    ctx.print(ctx.client.call("POST", "/firewall/confirm")["text"])
    return 0


def disable(ctx: Context, args: argparse.Namespace) -> int:
    ctx.print(ctx.client.call("POST", "/firewall/disable")["text"])
    return 0


VERBS = [
    Verb("firewall", "show what the host firewall allows and which listening sockets "
         "are reachable from outside", status, [JSON]),
    Verb("firewall:apply", "apply Berth's firewall table (only SSH, 80, 443 and what "
         "[firewall] allows)", apply, [
             arg("--dry-run", action="store_true", help="print the nftables ruleset, apply nothing"),
             arg("--confirm-within", type=float, metavar="SECONDS",
                 help="revert unless `berth firewall:confirm` arrives in time"),
             JSON]),
    Verb("firewall:confirm", "keep a change applied with --confirm-within", confirm),
    Verb("firewall:disable", "remove Berth's firewall table (other tables stay) and the "
         "ruleset saved for boot", disable),
]
