"""Access log lines: one per request, through the logger the agent hands the proxy.

`AccessLog.line` renders `TIME host=.. method=.. path=.. status=.. bytes=.. duration_ms=..
client=.. upstream=.. request_id=..` and logs it at INFO. The time prefix is rebuilt once
per second, not per request. Logging a line is still the most expensive thing the proxy
does per request after its syscalls, so whoever attaches handlers to this logger should
buffer (`BufferedStreamHandler`, or a QueueHandler): a handler that flushes every record
costs a write syscall per request.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO


class AccessLog:
    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        moment = time.time()
        second = int(moment)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((moment - second) * 1000):03d}Z"

    def line(
        self, host: str, method: bytes, path: bytes, status: int, size: int, seconds: float,
        client: str, upstream: str, request_id: bytes,
    ) -> None:  # fmt: skip
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        message = (
            f"{self.now()} host={host or '-'} method={method.decode('latin-1')}"
            f" path={path[:2048].decode('latin-1')} status={status} bytes={size}"
            f" duration_ms={seconds * 1000:.1f} client={client} upstream={upstream}"
            f" request_id={request_id.decode('latin-1')}"
        )
        # makeRecord + handle is logger.info without the caller lookup (a stack walk per
        # request, and the caller is always this line anyway).
        logger.handle(
            logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None)
        )


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that leaves flushing to `flush()` calls (say, once a second)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except (OSError, ValueError):
            self.handleError(record)
