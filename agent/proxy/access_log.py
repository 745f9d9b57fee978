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
        handler = _sole_plain_handler(logger)
        if handler is not None:
            # What logging would end up doing, without a LogRecord per request (its
            # construction and formatting cost more than the rest of the line).
            try:
                handler.stream.write(message + handler.terminator)
                return
            except (OSError, ValueError):
                pass  # a closed or failing stream: let logging report it below
        # makeRecord + handle is logger.info without the caller lookup (a stack walk per
        # request, and the caller is always this line anyway).
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None))


def _sole_plain_handler(logger: logging.Logger) -> BufferedStreamHandler | None:
    """The handler an INFO record of `logger` would reach, when it is the only one, a
    `BufferedStreamHandler` writing the bare message, and nothing filters on the way
    (the agent's access log file, the standalone proxy); otherwise None."""
    if logger.filters or logger.disabled:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (
        type(found) is BufferedStreamHandler
        and not found.filters
        and found.level <= logging.INFO
        and (
            found.formatter is None
            or (
                type(found.formatter) is logging.Formatter and found.formatter._fmt == "%(message)s"
            )
        )
    ):
        return found
    return None


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that leaves flushing to `flush()` calls (say, once a second)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except (OSError, ValueError):
            self.handleError(record)
