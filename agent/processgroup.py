"""Commands run with a deadline, each in a process group of its own: at the deadline the
whole group is killed (the command and whatever it started: a git filter, a script's
children), and the reaping after the kill is bounded too, so a process stuck in the kernel
does not hold its caller.

A process that leaves the group on purpose (setsid) is out of reach; nothing Berth runs
this way does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # seconds a killed group gets to be reaped before it is left behind


def run(argv: Sequence[str], *, timeout: float, input: bytes | str | None = None,
        capture_output: bool = False, grace: float = KILL_GRACE,
        **options: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run(argv, timeout=timeout, **options)` in a new session (its own
    process group). Past the deadline (or when the caller is interrupted) the group is
    killed, the command reaped within `grace` seconds, and the exception re-raised
    (subprocess.TimeoutExpired at the deadline). Processes the command left running in
    its group after it ended are killed too. Never raises CalledProcessError: callers
    read `returncode`."""
    if input is not None:
        if "stdin" in options:
            raise ValueError("stdin and input arguments may not both be used.")
        options["stdin"] = subprocess.PIPE
    if capture_output:
        options.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = subprocess.Popen(list(argv), start_new_session=True, **options)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except BaseException:
        end(proc, grace)
        raise
    kill_group(proc.pid)  # what the command left behind
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def end(proc: subprocess.Popen[Any], grace: float = KILL_GRACE) -> None:
    """Kill `proc`'s process group (started with start_new_session) and reap `proc`,
    waiting at most `grace` seconds; past that it is left behind with a warning and its
    pipes closed."""
    kill_group(proc.pid)  # before the reap: the group's id cannot be reused until then
    try:
        proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("command not ended %gs after kill argv=%s", grace, proc.args)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def kill_group(pgid: int) -> None:
    """SIGKILL every process in group `pgid`; none left (or none this process may
    signal) is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
