"""The deadline every command in an add-on runs under, inside its container. Pure.

Two `timeout`s are found in add-on images, and they differ where it matters:

- GNU coreutils' (the official Debian-based images): run as `timeout --foreground -s
  KILL N cmd`, it forks the command, kills the command alone at the deadline and lives to
  reap it. Without `--foreground` it would kill its whole process group, itself with it,
  orphaning the command's corpse to the container's PID 1 (postgres takes an unknown
  child killed by a signal for a crashed backend, and restarts).
- busybox's (the `-alpine` images) has no `--foreground`: `timeout -s KILL N cmd` forks
  a watcher and then becomes the command itself, which the watcher kills at the
  deadline. The command is the exec's own process, so the engine reaps it; the watcher,
  orphaned to PID 1, sees it gone within a second and exits with status 0: postgres
  reaps it and ignores it; Redis reaps it at its next save (a child it did not fork:
  a warning in its log) and until then it is a zombie holding only its pid.

Which one an image has is found once per image by running `true` under each form
(`probe`). From the host, a command past the agent's own deadline is killed where it
is: the exec's child under GNU's, the exec's process itself under busybox's (`victims`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Flavour = Literal["gnu", "busybox"]
FLAVOURS: tuple[Flavour, ...] = ("gnu", "busybox")
# Seconds a probe of an image's `timeout` may take.
PROBE_SECONDS = 10


def bounded(argv: Sequence[str], timeout: float, flavour: Flavour = "gnu") -> list[str]:
    """`argv` under the container's `timeout` (whole seconds, at least 1), killed alone
    at the deadline."""
    seconds = str(max(1, math.ceil(timeout)))
    if flavour == "busybox":
        return ["timeout", "-s", "KILL", seconds, *argv]
    return ["timeout", "--foreground", "-s", "KILL", seconds, *argv]


def probe(flavour: Flavour) -> list[str]:
    """What exits 0 only where `flavour`'s form of `timeout` works."""
    return bounded(["true"], PROBE_SECONDS, flavour)


def victims(flavour: Flavour, exec_pid: int, children: Sequence[int]) -> list[int]:
    """The host pids to kill to end a command past its deadline: the command alone,
    never GNU's `timeout` around it (which reaps it and ends)."""
    if flavour == "busybox":
        return [exec_pid] if exec_pid else []
    return list(children)
