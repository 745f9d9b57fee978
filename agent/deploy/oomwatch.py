"""The kernel's OOM kills of containers, followed from its log (`/dev/kmsg`) as they happen.

The engine's own OOM report (its `oom` event, `State.OOMKilled`) rests on a cgroup
notification that not every kernel and engine deliver, and the counter it would come
from (`memory.events` / `memory.oom_control`: `oom_kill`) vanishes with the container's
cgroup the moment the container stops. The kernel's log line of the kill stays: a
thread reads new records from the end of the log onwards (agent.deploy.oomlog parses
them), keeps the recent kills of each container, for whoever explains a death, and
hands each kill to the event loop as it is read (a process killed in a container that
lives on has no death to explain it). Where the log cannot be read (no /dev/kmsg, not root) the watch says so once and knows nothing.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from agent.deploy.oomlog import OomKill, oom_kill_in

log = logging.getLogger(__name__)

KMSG = Path("/dev/kmsg")
KEEP = 512  # recent kills remembered, over all containers
POLL = 0.5  # seconds between checks of the stop flag while the log is quiet


class OomWatch:
    """Recent OOM kills from the kernel's log, by container id."""

    def __init__(self, path: Path = KMSG, keep: int = KEEP) -> None:
        self._path = path
        self._kills: deque[tuple[float, OomKill]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_kill: Callable[[OomKill], None] | None = None

    def start(self, on_kill: Callable[[OomKill], None] | None = None) -> bool:
        """Follow the log from now on (`on_kill` called on the running event loop with
        each kill); whether it can be read."""
        if on_kill is not None:
            self._loop, self._on_kill = asyncio.get_running_loop(), on_kill
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            log.warning("kernel log unreadable, OOM kills known only from the engine "
                        "path=%s error=%s", self._path, exc.strerror)
            return False
        try:
            os.lseek(fd, 0, os.SEEK_END)  # only what happens from now on
        except OSError:
            pass  # a plain file or pipe: read from its start
        self._thread = threading.Thread(target=self._read, args=(fd,), name="oom-watch",
                                        daemon=True)
        self._thread.start()
        return True

    def kills(self, container_id: str, since: float = 0.0) -> list[OomKill]:
        """The kills of the container's processes seen since `since` (epoch seconds)."""
        with self._lock:
            return [kill for seen, kill in self._kills
                    if kill.container_id == container_id and seen >= since]

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _read(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while not self._stop.is_set():
                if poller.poll(POLL * 1000) and not self._drain(fd):
                    return
        finally:
            os.close(fd)

    def _drain(self, fd: int) -> bool:
        """Every record available now (one per read); False once the log is done."""
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    continue
                log.warning("kernel log read failed error=%s", exc.strerror)
                return False
            if not record:  # a plain file at its end (the log itself never ends)
                self._stop.wait(POLL)
                return True
            for line in record.decode("utf-8", "replace").splitlines():
                if (kill := oom_kill_in(line)) is not None:
                    self._seen(kill)

    def _seen(self, kill: OomKill) -> None:
        log.info("OOM kill container=%s task=%s at_limit=%s",
                 kill.container_id[:12], kill.task, kill.at_limit)
        with self._lock:
            self._kills.append((time.time(), kill))
        if self._loop is not None and self._on_kill is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_kill, kill)
            except RuntimeError:  # the loop is closed: the agent is stopping
                self._stop.set()
