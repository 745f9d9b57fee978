"""Verbs from a command line: the parser built from every verb module, and running one.

Separate from `agent.cli.main` so the git hook, which every push starts, loads none of
it (argparse, the verb modules, the config reader).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO, NoReturn, TextIO

from agent import __version__
from agent.errors import BerthError
from agent.paths import PathSettings

if TYPE_CHECKING:
    from agent.cli.registry import Verb


class UsageError(BerthError):
    exit_status = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def all_verbs() -> list[Verb]:
    # Imported here: the git hook and the SSH forced command start without them.
    from agent.cli.verbs import (
        addons,
        apps,
        backups,
        certs,
        config,
        doctor,
        events,
        firewall,
        processes,
        releases,
        server,
        storage,
    )

    return (apps.VERBS + config.VERBS + processes.VERBS + storage.VERBS + releases.VERBS
            + certs.VERBS + firewall.VERBS + events.VERBS + addons.VERBS + backups.VERBS
            + server.VERBS + doctor.VERBS)


LOCAL_COMMANDS = {
    "agent": "run the agent (proxy, control API, deploys, certificates) in the foreground",
    "ssh-command": "the SSH forced command (written into authorized_keys by Berth)",
    "hook": "git hook entry point (installed into app repositories by Berth)",
}


def build_parser(verbs: Sequence[Verb], *, remote: bool, only: str | None = None
                 ) -> argparse.ArgumentParser:
    """The parser of every verb, or, with `only`, of that one verb alone: the others'
    arguments cost each run of the CLI (a push runs several) time for nothing."""
    prog = "ssh berth@HOST" if remote else "berth"
    parser = _Parser(prog=prog, description="Berth: git push to deploy, on your own server.")
    parser.add_argument("--version", action="version", version=f"berth {__version__}")
    parsers = parser.add_subparsers(title="verbs", metavar="VERB")
    for verb in verbs:
        if only is None or verb.name == only:
            verb.add_to(parsers)
    if not remote and only is None:
        for name, summary in LOCAL_COMMANDS.items():
            parsers.add_parser(name, help=summary, add_help=False)
    return parser


def run_verb(
    paths: PathSettings, argv: Sequence[str], *, remote: bool, environ: Mapping[str, str],
    stdin: BinaryIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
    key: str | None = None,
) -> int:
    """Run one verb; `key` is the SSH key's name when run as the forced command (the
    audit trail's actor; otherwise the local user on the server)."""
    # Imported here: a push's forced command and hook start without the HTTP client.
    from agent.cli.client import ControlClient
    from agent.cli.registry import Context

    _check_text(argv)
    verbs = all_verbs()
    named = argv[0] if argv and any(verb.name == argv[0] for verb in verbs) else None
    parser = build_parser(verbs, remote=remote, only=named)
    if not argv:
        parser.print_help(stdout or sys.stdout)
        return 0
    args = parser.parse_args(list(argv))
    if not hasattr(args, "handler"):
        parser.print_help(stdout or sys.stdout)
        return 0
    actor = key or f"{_local_user()}@server"
    ctx = Context(
        client=ControlClient(paths.control_socket, actor=actor, verb=args.verb, key=key or ""),
        out=stdout or sys.stdout,
        err=stderr or sys.stderr,
        stdin=stdin or sys.stdin.buffer,
        environ=environ,
        remote=remote,
    )
    status: int = args.handler(ctx, args)
    return status


def _check_text(argv: Sequence[str]) -> None:
    """Arguments are UTF-8 text: bytes that are not (which Python keeps as lone
    surrogates) are refused here, not found deep in a request."""
    for index, value in enumerate(argv, 1):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"argument {index} is not valid UTF-8 text") from None


def _local_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
