"""Modes of what the agent makes: data_dir traversable only, logs 0640 (even when an
older install left them world-readable), never written through a symbolic link."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from agent import daemon
from agent.accesslog import AccessLogFile
from agent.paths import PathSettings, open_log, prepare_state_dirs


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_state_directories_are_tightened(tmp_path: Path) -> None:
    paths = PathSettings(data_dir=tmp_path / "data", log_dir=tmp_path / "log")
    paths.data_dir.mkdir(mode=0o755)
    paths.data_dir.chmod(0o755)  # as an older install left it
    prepare_state_dirs(paths)
    assert (mode(paths.data_dir), mode(paths.log_dir)) == (0o711, 0o750)


def test_an_old_world_readable_log_becomes_0640(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    path.write_text("old\n")
    path.chmod(0o644)
    os.close(open_log(path))
    assert mode(path) == 0o640 and path.read_text() == "old\n"


def test_a_log_path_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "shadow"
    target.write_text("x\n")
    target.chmod(0o600)
    (tmp_path / "access.log").symlink_to(target)
    with pytest.raises(OSError):
        os.close(open_log(tmp_path / "access.log"))
    assert mode(target) == 0o600 and target.read_text() == "x\n"


def test_the_agent_log_file_is_0640(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.log"
    log_file.write_text("")
    log_file.chmod(0o644)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        daemon.configure_logging("info", log_file)
        logging.getLogger("berth.test").info("hello")
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert mode(log_file) == 0o640


def test_the_access_log_is_0640_also_after_rotation(tmp_path: Path) -> None:
    async def scenario() -> None:
        access = AccessLogFile(tmp_path / "access.log", max_bytes=10, keep=2)
        logger = access.open()
        logger.info("a line longer than ten bytes")
        access.flush()  # rotates
        logger.info("another")
        await access.close()

    previous = os.umask(0o022)
    try:
        asyncio.run(scenario())
    finally:
        os.umask(previous)
    assert mode(tmp_path / "access.log") == 0o640
    assert mode(tmp_path / "access.log.1") == 0o640
