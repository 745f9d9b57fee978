"""Access log lines: the direct path to a sole buffered handler writes what logging would."""

from __future__ import annotations

import io
import logging

import pytest

from agent.proxy.access_log import AccessLog, BufferedStreamHandler

LINE = {"host": "shop.test", "method": b"GET", "path": b"/cart?x=1", "status": 200,
        "size": 12, "seconds": 0.0012, "client": "192.0.2.7", "upstream": "127.0.0.1:9001",
        "request_id": b"abc123"}


@pytest.fixture
def logger(request: pytest.FixtureRequest):
    log = logging.getLogger(f"test.access.{request.node.name}")
    saved = log.handlers[:]  # pytest's own capture handler may sit here
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers[:] = saved
    log.filters.clear()


def written(log: logging.Logger, access: AccessLog) -> str:
    stream = io.StringIO()
    log.addHandler(BufferedStreamHandler(stream))
    access.line(**LINE)  # type: ignore[arg-type]
    return stream.getvalue()


def test_a_sole_buffered_handler_gets_the_line_without_a_record(logger, monkeypatch) -> None:
    access = AccessLog(logger)
    access.now = lambda: "2026-11-27T01:02:03.004Z"  # type: ignore[method-assign]
    slow = logging.Filter()  # any filter sends the line through logging proper
    logger.addFilter(slow)
    through_logging = written(logger, access)
    logger.removeFilter(slow)
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)

    def no_records(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("a LogRecord was made")

    monkeypatch.setattr(logger, "makeRecord", no_records)
    direct = written(logger, access)
    assert direct == through_logging == (
        "2026-11-27T01:02:03.004Z host=shop.test method=GET path=/cart?x=1 status=200"
        " bytes=12 duration_ms=1.2 client=192.0.2.7 upstream=127.0.0.1:9001"
        " request_id=abc123\n")


def test_any_other_setup_goes_through_logging(logger) -> None:
    access = AccessLog(logger)
    first, second = io.StringIO(), io.StringIO()
    one, other = BufferedStreamHandler(first), BufferedStreamHandler(second)
    logger.addHandler(one)
    logger.addHandler(other)
    access.line(**LINE)  # type: ignore[arg-type]
    assert first.getvalue() == second.getvalue() != ""
    logger.removeHandler(other)
    one.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    access.line(**LINE)  # type: ignore[arg-type]
    assert first.getvalue().splitlines()[1].startswith("[INFO] ")


def test_a_closed_stream_is_reported_by_logging_not_raised(logger, capsys) -> None:
    access = AccessLog(logger)
    stream = io.StringIO()
    logger.addHandler(BufferedStreamHandler(stream))
    stream.close()
    before, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        access.line(**LINE)  # type: ignore[arg-type]  # must not raise
    finally:
        logging.raiseExceptions = before
    assert capsys.readouterr().err == ""  # reported (quietly, as configured) by logging
