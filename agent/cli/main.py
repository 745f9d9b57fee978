"""`berth`'s entry point: pick the command, run it, turn errors into one line.

Only this module calls `sys.exit` (through `main`'s return value): everything below
raises `BerthError`, which becomes `error: <message>` on stderr and exit status 1 (2 for
a usage error). The git hook runs through here on every push, so each command imports
what it needs only when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from agent.errors import BerthError


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        command = argv[0] if argv else ""
        if command == "agent":
            from agent.config import load_config
            from agent.daemon import run_agent

            return run_agent(load_config(environ=environ), argv[1:])
        if command == "hook":
            from agent.cli.hook import run_hook

            return run_hook(argv[1:], environ)
        from agent.cli.dispatch import run_verb
        from agent.paths import load_paths

        paths = load_paths(environ)
        if command == "ssh-command":
            from agent.cli.sshcommand import ssh_command

            return ssh_command(paths, argv[1:], environ)
        return run_verb(paths, argv, remote=False, environ=environ)
    except BerthError as exc:
        _fail(str(exc))
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 (a bug: one line, no traceback on a pusher's screen)
        _fail(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        return 1


def _fail(message: str) -> None:
    first = message.splitlines()[0] if message else "failed"
    sys.stderr.write(f"error: {first}\n")
    sys.stderr.flush()
