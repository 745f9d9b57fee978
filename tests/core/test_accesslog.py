import logging

from agent.accesslog import AccessLogFile


async def test_lines_are_buffered_flushed_and_rotated(tmp_path):
    log = AccessLogFile(tmp_path / "log" / "access.log", max_bytes=200, keep=2)
    logger = log.open()
    try:
        for n in range(3):
            logger.info("request %d " + "x" * 80, n)
        log.flush()  # over 200 bytes: rotated
        assert (tmp_path / "log" / "access.log.1").read_text().count("request") == 3
        logger.info("after rotation")
        log.flush()
        assert "after rotation" in (tmp_path / "log" / "access.log").read_text()
        assert not logging.getLogger("berth.access").propagate
    finally:
        await log.close()
