"""Saved runtime logs of removed instances: append, tail, rotation, forgetting."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.deploy.loghistory import LogHistory
from agent.deploy.runtime import LogLine


def lines(source: str, count: int, start: int = 0) -> list[LogLine]:
    return [LogLine(source, f"2026-11-27T01:00:{n:02d}.000000000Z", f"{source} line {n} ünïcode")
            for n in range(start, start + count)]


def test_saved_lines_come_back_oldest_first_and_filtered(tmp_path: Path) -> None:
    history = LogHistory(tmp_path / "apps")
    history.save("shop", lines("web.1", 3))
    history.save("shop", lines("worker.1", 2, start=3))
    history.save("other", lines("web.1", 1))
    assert [line.text for line in history.tail("shop", 10)] == [
        "web.1 line 0 ünïcode", "web.1 line 1 ünïcode", "web.1 line 2 ünïcode",
        "worker.1 line 3 ünïcode", "worker.1 line 4 ünïcode"]
    assert [line.text for line in history.tail("shop", 2)] == [
        "worker.1 line 3 ünïcode", "worker.1 line 4 ünïcode"]
    assert [line.source for line in history.tail("shop", 10, "web")] == ["web.1"] * 3
    assert history.tail("shop", 0) == [] and history.tail("nobody", 5) == []


def test_history_is_bounded_to_two_files(tmp_path: Path) -> None:
    history = LogHistory(tmp_path, max_bytes=4000)
    for round_ in range(20):
        history.save("shop", lines("web.1", 10, start=round_ * 10 % 50))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["shop.jsonl", "shop.jsonl.1"]
    assert all(p.stat().st_size <= 4000 for p in tmp_path.iterdir())
    assert len(history.tail("shop", 1000)) < 200  # the oldest rounds are gone


def test_a_torn_line_is_skipped_and_forget_removes_everything(tmp_path: Path) -> None:
    history = LogHistory(tmp_path)
    history.save("shop", lines("web.1", 2))
    with (tmp_path / "shop.jsonl").open("a") as sink:
        sink.write('{"time": "2026-11-27T01:00:09Z", "sou')  # the agent died mid-write
    history.save("shop", lines("web.1", 1, start=5))
    assert [line.text for line in history.tail("shop", 10)] == [
        "web.1 line 0 ünïcode", "web.1 line 1 ünïcode", "web.1 line 5 ünïcode"]
    history.forget("shop")
    assert list(tmp_path.iterdir()) == []


def test_instances_retired_together_lose_no_lines(tmp_path: Path) -> None:
    """Several threads save at once (instances stopped together) while the file
    rotates: every line of a round survives in one of the two files."""
    one_line = len(history_line()) + 1
    history = LogHistory(tmp_path, max_bytes=250 * one_line)
    for round_ in range(40):
        savers = [threading.Thread(target=history.save, args=(
            "shop", [LogLine(f"web.{n}", f"2026-11-27T01:{round_:02d}:00Z", f"r{round_} i{n} l{k}")
                     for k in range(50)])) for n in range(4)]
        for saver in savers:
            saver.start()
        for saver in savers:
            saver.join()
        kept = {line.text for line in history.tail("shop", 10**6)}
        assert {f"r{round_} i{n} l{k}" for n in range(4) for k in range(50)} <= kept, round_


def history_line() -> str:
    import json

    return json.dumps({"time": "2026-11-27T01:00:00Z", "source": "web.1", "text": "r00 i0 l00"})


def test_a_saved_line_keeps_the_release_it_came_from(tmp_path: Path) -> None:
    history = LogHistory(tmp_path)
    history.save("shop", [LogLine("web.1", "2026-11-27T01:00:00Z", "bye", 7)])
    with (tmp_path / "shop.jsonl").open("a") as sink:  # saved before releases were kept
        sink.write('{"time": "2026-11-27T01:00:01Z", "source": "web.1", "text": "old"}\n')
    assert [(line.text, line.release) for line in history.tail("shop", 10)] == [
        ("bye", 7), ("old", 0)]


def test_the_cli_marks_each_line_with_its_release() -> None:
    from agent.cli.verbs.processes import log_source

    assert log_source({"source": "web.1", "release": 7}) == "web.1 v7"
    assert log_source({"source": "web.1", "release": 0}) == "web.1"
    assert log_source({"source": "web.1"}) == "web.1"  # an agent from before releases
