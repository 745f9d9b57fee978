"""The saved boot ruleset as a file: atomic replacement, no rewrite of the same text,
problems as one line, and nothing at all when no path is configured."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent.firewall.bootfile import BootRuleset


def test_save_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "berth" / "firewall.nft"  # its directories are made
    boot = BootRuleset(path)
    assert asyncio.run(boot.read()) is None
    assert asyncio.run(boot.save("table inet berth {}\n")) is None
    first = path.stat().st_ino
    assert asyncio.run(boot.save("table inet berth { }\n")) is None
    assert path.read_text() == "table inet berth { }\n"
    assert path.stat().st_ino != first  # a new file renamed over the old, never rewritten
    assert os.listdir(path.parent) == ["firewall.nft"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_same_text_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "firewall.nft"
    boot = BootRuleset(path)
    asyncio.run(boot.save("same\n"))
    before = path.stat()
    assert asyncio.run(boot.save("same\n")) is None
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_remove_is_fine_when_there_is_nothing(tmp_path: Path) -> None:
    path = tmp_path / "firewall.nft"
    boot = BootRuleset(path)
    assert asyncio.run(boot.remove()) is None
    asyncio.run(boot.save("x\n"))
    assert asyncio.run(boot.remove()) is None
    assert not path.exists()


def test_a_problem_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "firewall.nft"
    problem = asyncio.run(BootRuleset(path).save("x\n"))
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"the ruleset loaded at boot could not be saved ({path}: ")
    assert os.listdir(tmp_path) == ["plain"]


def test_no_path_means_nothing_is_saved_read_or_removed() -> None:
    boot = BootRuleset(None)
    assert asyncio.run(boot.save("x\n")) is None
    assert asyncio.run(boot.read()) is None
    assert asyncio.run(boot.remove()) is None


def test_a_failed_rename_leaves_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "firewall.nft"
    path.mkdir()  # something that is not a file stands where the ruleset goes
    problem = asyncio.run(BootRuleset(path).save("x\n"))
    assert problem is not None and problem.startswith("the ruleset loaded at boot could not")
    assert os.listdir(tmp_path) == ["firewall.nft"] and path.is_dir()
