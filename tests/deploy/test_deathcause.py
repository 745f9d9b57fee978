"""Why a container died, in words: the engine's flag, the kernel's kills, the exit status."""

from __future__ import annotations

import pytest

from agent.deploy.deathcause import death_cause, megabytes, process_killed

MIB = 1024 * 1024


@pytest.mark.parametrize(("exit_code", "flagged", "kills", "limit", "cause"), [
    (137, False, 1, 32 * MIB, "ran out of memory (limit 32 MB)"),
    (137, True, 0, 512 * MIB, "ran out of memory (limit 512 MB)"),
    (137, True, 0, None, "ran out of memory (killed by the kernel)"),
    (137, False, 2, None, "ran out of memory (killed by the kernel)"),
    (0, True, 0, 64 * MIB, "ran out of memory (limit 64 MB)"),  # the engine knows best
    (137, False, 0, 32 * MIB, "was killed (SIGKILL, exit status 137)"),
    # A worker process killed for memory earlier, the container exiting later for
    # another reason: the exit is not the OOM's.
    (1, False, 1, 32 * MIB, "exited with status 1"),
    (0, False, 0, None, "exited with status 0"),
    (None, False, 0, None, "stopped (exit status unknown)"),
])
def test_each_death_is_named_by_what_is_known_of_it(exit_code, flagged, kills, limit, cause):
    assert death_cause(exit_code, flagged, kills, limit) == cause


def test_limits_read_in_megabytes() -> None:
    assert [megabytes(n) for n in (6 * MIB, 1536 * 1024, 2048 * MIB)] == [
        "6 MB", "1.5 MB", "2048 MB"]


def test_a_process_killed_in_an_instance_that_lives_on() -> None:
    assert process_killed("web.1", "gunicorn", 32 * MIB) == (
        "web.1: gunicorn ran out of memory (limit 32 MB) and was killed; web.1 runs on")
    assert process_killed("worker.2", "", None) == (
        "worker.2: a process was killed by the kernel for memory (the host ran out); "
        "worker.2 runs on")
