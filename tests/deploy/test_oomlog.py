"""The kernel's OOM kill reports: which container's process was killed, and whether at
that container's own limit; and the watch that follows them from a log."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from agent.deploy.oomlog import OomKill, container_of, oom_kill_in
from agent.deploy.oomwatch import OomWatch

ID = "bf5c86c9085ccfe407f41a2fca67a1454b44527c122370956a456fb5ac4fa1fc"
OTHER = "271b0fe140e97fecd26fa11947408ce44c07ff790312e3e2b44d0f922b3daad9"


def kill_line(oom_memcg: str, task_memcg: str, constraint: str = "CONSTRAINT_MEMCG",
              mems: str = "0") -> str:
    return (f"6,81161,65258465550,-;oom-kill:constraint={constraint},nodemask=(null),"
            f"cpuset={ID},mems_allowed={mems},oom_memcg={oom_memcg},"
            f"task_memcg={task_memcg},task=python3,pid=26355,uid=0")


def test_a_kill_at_the_containers_limit_under_either_cgroup_driver() -> None:
    cgroupfs = kill_line(f"/docker/{ID}", f"/docker/{ID}")
    systemd = kill_line(f"/system.slice/docker-{ID}.scope", f"/system.slice/docker-{ID}.scope")
    for line in (cgroupfs, systemd, cgroupfs.partition(";")[2]):
        assert oom_kill_in(line) == OomKill(ID, at_limit=True, task="python3", pid=26355)


def test_a_kill_of_the_host_running_out_is_not_at_the_limit() -> None:
    host = kill_line("/", f"/docker/{ID}", constraint="CONSTRAINT_NONE", mems="0-1,3")
    assert oom_kill_in(host) == OomKill(ID, at_limit=False, task="python3", pid=26355)
    parent = kill_line("/system.slice", f"/system.slice/docker-{ID}.scope")
    assert oom_kill_in(parent) == OomKill(ID, at_limit=False, task="python3", pid=26355)


def test_an_older_kernels_report() -> None:
    line = f"Task in /docker/{ID} killed as a result of limit of /docker/{ID}"
    assert oom_kill_in(line) == OomKill(ID, at_limit=True)


def test_other_records_and_kills_outside_containers_are_not() -> None:
    assert oom_kill_in("6,1,2,-;docker0: port 1(vethk) entered blocking state") is None
    assert oom_kill_in("3,2,3,-;Memory cgroup out of memory: Killed process 26355") is None
    assert oom_kill_in(kill_line("/", "/user.slice", constraint="CONSTRAINT_NONE")) is None


def test_the_innermost_container_of_a_nested_cgroup() -> None:
    assert container_of(f"/docker/{OTHER}/docker/{ID}") == ID
    assert container_of(f"/docker/{ID}/workers") == ID
    assert container_of("/docker/not-an-id") is None


def test_the_watch_keeps_each_containers_recent_kills(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    os.mkfifo(log)
    watch = OomWatch(log)
    assert watch.start()
    try:
        started = time.time()
        with open(log, "w") as writer:
            writer.write("6,1,2,-;unrelated\n" + kill_line(f"/docker/{ID}", f"/docker/{ID}")
                         + "\n" + kill_line("/", f"/docker/{OTHER}", "CONSTRAINT_NONE") + "\n")
        deadline = time.monotonic() + 10
        while not watch.kills(OTHER) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watch.kills(ID, since=started) == [OomKill(ID, True, "python3", 26355)]
        assert watch.kills(OTHER) == [OomKill(OTHER, False, "python3", 26355)]
        assert watch.kills(ID, since=time.time() + 1) == []
    finally:
        watch.close()
    assert watch._thread is not None and not watch._thread.is_alive()


def test_an_unreadable_log_is_said_once_and_knows_nothing(tmp_path: Path) -> None:
    watch = OomWatch(tmp_path / "missing")
    assert not watch.start()
    assert watch.kills(ID) == []
    watch.close()


async def test_each_kill_is_handed_to_the_event_loop_as_it_is_read(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    os.mkfifo(log)
    handed: asyncio.Queue[OomKill] = asyncio.Queue()
    watch = OomWatch(log)
    assert watch.start(on_kill=handed.put_nowait)
    try:
        line = kill_line(f"/docker/{ID}", f"/docker/{ID}") + "\n"
        await asyncio.to_thread(log.write_text, line)  # the watch holds the reading end
        assert await asyncio.wait_for(handed.get(), 10) == OomKill(ID, True, "python3", 26355)
    finally:
        await asyncio.to_thread(watch.close)
