"""The agent's own log: stderr by default, or a file the agent rotates itself."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent import daemon


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_log_file_is_rotated_and_bounded(tmp_path: Path, monkeypatch, root_logging) -> None:
    monkeypatch.setattr(daemon, "LOG_FILE_BYTES", 2000)
    monkeypatch.setattr(daemon, "LOG_FILES_KEPT", 2)
    log_file = tmp_path / "logs" / "agent.log"
    daemon.configure_logging("info", log_file)
    log = logging.getLogger("berth.test")
    for n in range(200):
        log.info("deploy finished app=shop release=%d", n)
    log.debug("not at info level")
    names = sorted(p.name for p in log_file.parent.iterdir())
    assert names == ["agent.log", "agent.log.1", "agent.log.2"]
    assert all(p.stat().st_size <= 2000 for p in log_file.parent.iterdir())
    text = log_file.read_text()
    assert "INFO berth.test: deploy finished app=shop release=199" in text
    assert "not at info level" not in text


def test_by_default_the_log_goes_to_stderr(capsys, root_logging) -> None:
    daemon.configure_logging("warning", None)
    logging.getLogger("berth.test").warning("disk nearly full free_mb=%d", 900)
    assert "WARNING berth.test: disk nearly full free_mb=900" in capsys.readouterr().err
