"""The kernel's out-of-memory kill reports, read as Berth values. Pure.

When a process is killed for memory the kernel logs one line naming the cgroup of the
process it killed (`task_memcg`) and the cgroup whose limit was reached (`oom_memcg`):

    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=...,mems_allowed=0,
    oom_memcg=/docker/ID,task_memcg=/docker/ID,task=python3,pid=26355,uid=0

(older kernels: `Task in /docker/ID killed as a result of limit of /docker/ID`). A
container's cgroup is named after its id in both of the engine's layouts: `/docker/ID`
(cgroupfs driver) and `/system.slice/docker-ID.scope` (systemd driver), either one
possibly under a parent's (an engine inside a container). This is how an OOM is known
where the engine reports none: a container's own cgroup, and its `oom_kill` counter, is
deleted as soon as the container stops, before the engine even reports the death.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")  # /dev/kmsg: priority,seq,time,flags;
_OOM_KILL = re.compile(
    r"oom-kill:constraint=(?P<constraint>\w+),.*?"
    r"(?:oom_memcg=(?P<limited>[^,]*),)?task_memcg=(?P<task_memcg>[^,]*),"
    r"task=(?P<task>.*?),pid=(?P<pid>\d+)")
_OLD_OOM_KILL = re.compile(
    r"Task in (?P<task_memcg>\S+) killed as a result of limit of (?P<limited>\S+)")
_CONTAINER = re.compile(r"^(?:docker-)?([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True)
class OomKill:
    """The kernel killed a process of a container for memory."""

    container_id: str  # the container the killed process ran in
    at_limit: bool  # at that container's own memory limit (not the host running out)
    task: str = ""  # the killed process's name
    pid: int | None = None  # its pid on the host


class OomKills(Protocol):
    """The kernel's recent OOM kills, as their users ask (agent.deploy.oomwatch.OomWatch)."""

    def kills(self, container_id: str, since: float = 0.0) -> list[OomKill]: ...


def container_of(cgroup: str) -> str | None:
    """The container id a cgroup path names (the innermost one), or None."""
    for part in reversed(cgroup.split("/")):
        if (match := _CONTAINER.match(part)) is not None:
            return match.group(1)
    return None


def oom_kill_in(record: str) -> OomKill | None:
    """The OOM kill one kernel log record reports (a /dev/kmsg record or a bare
    message); None for any other record, or a kill outside any container."""
    message = _KMSG_PREFIX.sub("", record.strip(), count=1)
    if (match := _OOM_KILL.search(message)) is not None:
        limited_here = match.group("constraint") == "CONSTRAINT_MEMCG"
        limited, pid = match.group("limited"), int(match.group("pid"))
        task = match.group("task")
    elif (match := _OLD_OOM_KILL.search(message)) is not None:
        limited_here, limited, pid, task = True, match.group("limited"), None, ""
    else:
        return None
    container = container_of(match.group("task_memcg"))
    if container is None:
        return None
    at_limit = limited_here and limited is not None and container_of(limited) == container
    return OomKill(container, at_limit, task, pid)
