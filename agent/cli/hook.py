"""The pre-receive hook: deploy a push before its ref moves.

git runs the hook inside the app's bare repository with the pushed objects still in
quarantine and the ref updates on stdin (`OLD NEW REF` lines). For the app's deploy
branch, the hook streams `git archive NEW` to the agent and relays the deploy's output
(git shows it to the pusher as `remote:` lines). A failed deploy exits non-zero, so git
rejects the push and the branch keeps its old commit; other branches are stored as they
are, and the pusher is told they do not deploy.

Every push waits for this process to start, so it loads little (no argparse, pathlib or
dataclasses): the hook file names the control socket in BERTH_CONTROL_SOCKET, and the
agent says which branches deploy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TextIO

from agent.cli.client import ControlClient, path, relay
from agent.errors import BerthError
from agent.names import check_app

ZERO = "0" * 40
CHUNK = 64 * 1024
SOCKET_ENV = "BERTH_CONTROL_SOCKET"


def parse_updates(text: str) -> list[tuple[str, str, str]]:
    updates = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            updates.append((fields[0], fields[1], fields[2]))
    return updates


def app_of(git_dir: str) -> str:
    name = os.path.basename(os.path.realpath(git_dir))
    return check_app(name.removesuffix(".git"))


def run_hook(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    if list(argv) != ["pre-receive"]:
        raise BerthError("usage: berth hook pre-receive (run by git)")
    socket_path = environ.get(SOCKET_ENV)
    if not socket_path:  # a hook file from before the variable: read the config
        from agent.paths import load_paths

        socket_path = str(load_paths(environ).control_socket)
    app = app_of(environ.get("GIT_DIR", "."))
    updates = parse_updates(sys.stdin.read())
    pusher = environ.get("BERTH_PUSHER", "")  # the SSH key's name, from the forced command
    client = ControlClient(socket_path, actor=pusher or "root@server", verb="push", key=pusher)
    return pre_receive(client, app, updates, sys.stdout)


def pre_receive(
    client: ControlClient, app: str, updates: Sequence[tuple[str, str, str]], out: TextIO
) -> int:
    deploying = client.call("GET", path("apps", app))["deploy_branches"]
    for old, new, ref in updates:
        if not ref.startswith("refs/heads/"):
            continue
        branch = ref[len("refs/heads/"):]
        if branch not in deploying:
            wanted = " or ".join(deploying)
            _say(out, f"-----> {branch} stored; only pushes to {wanted} deploy {app}")
            continue
        if new == ZERO:
            raise BerthError(f"refusing to delete {branch}: it is the branch {app} deploys from")
        status = _deploy(client, app, new, out, old=old, ref=ref)
        if status != 0:
            return status
    return 0


def _deploy(client: ControlClient, app: str, sha: str, out: TextIO, *, old: str, ref: str) -> int:
    """Deploy `sha`; the agent refuses it unless `ref` still holds `old` (another push
    to the app may have come first)."""
    archive = subprocess.Popen(
        ["git", "archive", "--format=tar", sha], stdout=subprocess.PIPE
    )
    assert archive.stdout is not None
    try:
        events = client.stream("POST", path("apps", app, "deploys"),
                               query={"sha": sha, "old": old, "ref": ref},
                               body=_chunks(archive.stdout))
        status = relay(events, lambda line: _say(out, line))
    finally:
        archive.stdout.close()
        code = archive.wait()
    if code != 0:
        raise BerthError(f"git archive {sha[:7]} failed")
    return status


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk
