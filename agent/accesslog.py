"""The agent's access log file: the proxy's per-request lines, buffered and rotated.

The proxy logs one line per request through a logger; writing each line at once would
cost a system call per request, so lines are buffered and flushed once a second. The file
is rotated by size (access.log, access.log.1, ...) so it cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TextIO

from agent.paths import open_log
from agent.proxy.access_log import BufferedStreamHandler

LOGGER = "berth.access"
FLUSH_INTERVAL = 1.0


class AccessLogFile:
    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.logger = logging.getLogger(LOGGER)
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self._stream: TextIO | None = None
        self._handler: BufferedStreamHandler | None = None
        self._task: asyncio.Task[None] | None = None

    def open(self) -> logging.Logger:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = os.fdopen(open_log(self.path), "a", encoding="utf-8", buffering=256 * 1024)
        self._handler = BufferedStreamHandler(self._stream)
        self.logger.addHandler(self._handler)
        self._task = asyncio.create_task(self._flush_loop(), name="access-log")
        return self.logger

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        if self._stream is None:
            return
        self._stream.flush()
        if self._stream.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        assert self._stream is not None and self._handler is not None
        old = self._stream
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._stream = os.fdopen(open_log(self.path), "a", encoding="utf-8", buffering=256 * 1024)
        self._handler.setStream(self._stream)
        old.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.flush()
        if self._handler is not None:
            self.logger.removeHandler(self._handler)
        if self._stream is not None:
            self._stream.close()
            self._stream = None
