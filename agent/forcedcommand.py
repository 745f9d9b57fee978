"""The SSH forced command's fast path: a POSIX sh script sshd runs for every Berth key.

Every push pays for the forced command, and starting Python with Berth's imports costs
tens of milliseconds. The script is a prefix of `berth`: authorized_keys runs it as
`SCRIPT ssh-command KEYNAME`. For `git-receive-pack 'APP'` or `git-upload-pack 'APP'`
of an app whose repository exists, with APP spelled exactly as an app name (checked
with explicit character lists, whatever the locale), it execs git itself, as
`berth ssh-command` would. Everything else (a verb, a first push, `APP.git`, a name it
cannot vouch for) is passed unchanged to `berth ssh-command`, which checks it in full.
When the client asked for a terminal (`ssh -tt`, or `RequestTTY force` in its
configuration), git gets it in raw mode, so the pack passes byte for byte.

`script` is pure; `install` writes it (root-owned, 0755) where the agent keeps its data.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from pathlib import Path

from agent.names import APP_NAME_MAX

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_NAME_CHARS = _LOWER + "0123456789-"
NAME_MAX = APP_NAME_MAX

_TEMPLATE = """#!/bin/sh
# Berth's SSH forced command, written by the agent at start (edits are overwritten).
# sshd runs it as `THIS ssh-command KEYNAME`. A push or fetch of an existing app execs
# git at once; anything else goes to `berth ssh-command`, which checks it in full.
if [ "$#" -eq 2 ] && [ "$1" = ssh-command ]; then
    case $SSH_ORIGINAL_COMMAND in
    "git-receive-pack '"?*"'" | "git-upload-pack '"?*"'")
        name=${{SSH_ORIGINAL_COMMAND#* \\'}}
        name=${{name%\\'}}
        case $name in
        [!{lower}]* | *[!{chars}]*) ;;
        *)
            repo={repos}/$name.git
            if [ "${{#name}}" -le {name_max} ] && [ -f "$repo/HEAD" ]; then
                # Under `ssh -tt` the pack crosses a terminal: raw, or it is mangled.
                if [ -t 0 ]; then stty raw -echo 2>/dev/null || :; fi
                BERTH_PUSHER=$2 exec "${{SSH_ORIGINAL_COMMAND%% *}}" "$repo"
            fi
            ;;
        esac
        ;;
    esac
fi
exec {fallback} "$@"
"""


def script(repos: Path, fallback: str) -> str:
    """The script's text: apps' repositories live in `repos`; `fallback` is the shell
    command that runs `berth` (the same prefix the git hooks use)."""
    return _TEMPLATE.format(lower=_LOWER, chars=_NAME_CHARS, name_max=NAME_MAX,
                            repos=shlex.quote(str(repos)), fallback=fallback)


def install(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, 0755 and ours, unless it is so already."""
    try:
        mode = path.stat()
        if (stat.S_IMODE(mode.st_mode) == 0o755 and mode.st_uid == os.geteuid()
                and path.read_text(encoding="utf-8") == text):
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o755)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
