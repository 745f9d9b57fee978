"""Why a container died, or lost a process to the OOM killer, in the words an app's
events use. Pure.

What is known of a death: its exit status, whether the engine flagged it as an OOM
(its `oom` event or `State.OOMKilled`), how many of its processes the kernel reported
killing for memory just before, and its memory limit. The engine's flag wins over the
exit status; the kernel's kills explain a death by SIGKILL (exit status 137: the OOM
killer's signal), not a later exit of a container whose main process outlived them.
"""

from __future__ import annotations

MIB = 1024 * 1024
SIGKILLED = 137  # 128 + SIGKILL


def megabytes(size: int) -> str:
    """`32 MB` for 32 MiB, `1.5 MB` for 1536 KiB (the unit `ps:limit` sizes read in)."""
    return f"{size / MIB:.6g} MB"


def death_cause(
    exit_code: int | None, oom_flagged: bool, oom_kills: int, memory_limit: int | None
) -> str:
    """`ran out of memory (limit 32 MB)`, `was killed (SIGKILL, exit status 137)`,
    `exited with status 1`, ... (follows the instance's name in a sentence)."""
    if oom_flagged or (exit_code == SIGKILLED and oom_kills > 0):
        if memory_limit:
            return f"ran out of memory (limit {megabytes(memory_limit)})"
        return "ran out of memory (killed by the kernel)"
    if exit_code == SIGKILLED:
        return f"was killed (SIGKILL, exit status {SIGKILLED})"
    if exit_code is None:
        return "stopped (exit status unknown)"
    return f"exited with status {exit_code}"


def process_killed(dyno: str, task: str, memory_limit: int | None) -> str:
    """A process of an instance that lives on was killed for memory (a worker its
    master process replaces): `web.1: python3 ran out of memory (limit 32 MB) and was
    killed; web.1 runs on`."""
    if memory_limit:
        what = f"ran out of memory (limit {megabytes(memory_limit)}) and was killed"
    else:
        what = "was killed by the kernel for memory (the host ran out)"
    return f"{dyno}: {task or 'a process'} {what}; {dyno} runs on"
