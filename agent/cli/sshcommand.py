"""The SSH forced command: what a key may do when it logs in as the berth user.

sshd runs `berth ssh-command KEYNAME` for every login with a Berth key and puts what the
client asked for in SSH_ORIGINAL_COMMAND. Allowed: `git-receive-pack 'APP'` (a push;
the first one creates the app), `git-upload-pack 'APP'` (a clone or fetch), and the CLI
verbs. Anything else, a shell included, is refused with a message.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from agent.errors import BerthError
from agent.names import check_app, check_key_name
from agent.paths import PathSettings
from agent.sshkeys import SCOPED

GIT_COMMANDS = ("git-receive-pack", "git-upload-pack")


class Refused(BerthError):
    pass


def parse_git_target(argument: str) -> str:
    """'myapp', '/myapp', '~/myapp', 'myapp.git' -> 'myapp' (validated, not mangled)."""
    name = argument
    for prefix in ("~/", "/"):
        name = name.removeprefix(prefix)
    name = name.removesuffix(".git")
    return check_app(name)


def ssh_command(paths: PathSettings, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    if len(argv) not in (1, 2) or argv[1:] not in ([], [SCOPED]):
        raise Refused("usage: berth ssh-command KEYNAME [scoped] (run by sshd, not by hand)")
    key_name = check_key_name(argv[0])
    scoped = len(argv) == 2
    original = environ.get("SSH_ORIGINAL_COMMAND", "").strip()
    if not original:
        sys.stderr.write(
            f"Hi {key_name}! You are authenticated, but Berth offers no shell.\n"
            "Push with: git push berth@HOST:APP main\n"
            "Run verbs with: ssh berth@HOST VERB (ssh berth@HOST --help lists them)\n"
        )
        return 1
    try:
        words = shlex.split(original)
    except ValueError as exc:
        raise Refused(f"cannot parse the command: {exc}") from None
    if words[0] in GIT_COMMANDS:
        return _git(paths, words, key_name, environ, scoped=scoped)
    if words[0] in ("agent", "ssh-command", "hook"):
        raise Refused(f"{words[0]!r} is not available over SSH")
    from agent.cli.dispatch import run_verb

    return run_verb(paths, words, remote=True, environ=environ, key=key_name)


def _git(paths: PathSettings, words: list[str], key_name: str, environ: Mapping[str, str],
         *, scoped: bool = False) -> int:
    if len(words) != 2:
        raise Refused(f"{words[0]} takes exactly one repository")
    app = parse_git_target(words[1])
    repo = str(paths.repo(app))
    if scoped or not os.path.exists(os.path.join(repo, "HEAD")):
        # Unknown here: a first push creates the app (and its repository) through the
        # agent; a clone of an app that does not exist gets the agent's "not found".
        # A key limited to some apps always asks the agent, which refuses other apps.
        # (Imported here: a push to an existing app starts git without the HTTP client.)
        from agent.cli.client import ControlClient, path

        verb = "push" if words[0] == "git-receive-pack" else "fetch"
        client = ControlClient(paths.control_socket, actor=key_name, verb=verb, key=key_name)
        if words[0] == "git-receive-pack":
            repo = client.call("POST", path("apps", app, "repo"))["path"]
        else:
            repo = client.call("GET", path("apps", app))["repo"]
    env = dict(environ)
    env["BERTH_PUSHER"] = key_name
    raw_terminal(0)
    os.execvpe(words[0], [words[0], repo], env)
    return 1  # not reached: exec replaced this process


def raw_terminal(fd: int) -> None:
    """A terminal on `fd` (the client asked for one: `ssh -tt`) made raw, so git's
    pack crosses it byte for byte, neither echoed nor translated (as the sh fast path
    of agent.forcedcommand does with `stty raw -echo`)."""
    if os.isatty(fd):
        import tty

        tty.setraw(fd)
