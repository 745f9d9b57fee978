"""agent.treefile: what a push can make Berth read, and what it is refused."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from agent.treefile import MAX_FILE_BYTES, TreeFileRefused, locate, read_bytes, read_text


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    return root


def refused(root: Path, name: str) -> str:
    with pytest.raises(TreeFileRefused) as caught:
        read_bytes(root, name)
    message = str(caught.value)
    assert name in message and "\n" not in message
    return message


def test_a_plain_file_reads_and_an_absent_one_is_none(tree: Path) -> None:
    (tree / "Procfile").write_text("web: gunicorn app:app\n")
    assert read_text(tree, "Procfile") == "web: gunicorn app:app\n"
    assert read_bytes(tree, "app.json") is None
    assert read_bytes(tree, "missing/app.json") is None
    assert read_bytes(tree, "Procfile/under-a-file") is None


def test_a_symlink_to_dev_zero_is_refused_at_once(tree: Path) -> None:
    (tree / "Procfile").symlink_to("/dev/zero")
    started = time.monotonic()
    assert "outside the pushed tree" in refused(tree, "Procfile")
    assert time.monotonic() - started < 1.0


def test_a_symlink_to_a_root_only_file_is_refused(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("db_password: hunter2\n")
    secret.chmod(0o600)
    (tree / "Procfile").symlink_to(secret)
    (tree / "app.json").symlink_to("../secret")
    assert "hunter2" not in refused(tree, "Procfile")
    assert "leaves the pushed tree" in refused(tree, "app.json")


def test_a_fifo_is_refused_without_blocking(tree: Path) -> None:
    os.mkfifo(tree / "Procfile")
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(refused(tree, "Procfile")))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert outcome and "a FIFO, not a regular file" in outcome[0]


def test_a_device_is_refused_even_inside_the_tree(tree: Path) -> None:
    os.mknod(tree / "Procfile", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's
    assert "a device, not a regular file" in refused(tree, "Procfile")


def test_a_2_gib_sparse_file_is_refused_by_size_without_reading_it(tree: Path) -> None:
    with open(tree / "Procfile", "wb") as handle:
        handle.truncate(2 * 1024 ** 3)
    started = time.monotonic()
    message = refused(tree, "Procfile")
    assert "larger than its cap of 1 MiB" in message
    assert time.monotonic() - started < 1.0


def test_the_cap_is_the_callers(tree: Path) -> None:
    (tree / "big").write_bytes(b"a" * (MAX_FILE_BYTES + 1))
    assert "larger than its cap of 1 MiB" in refused(tree, "big")
    (tree / "small").write_bytes(b"a" * 200)
    with pytest.raises(TreeFileRefused, match="cap of 100 bytes"):
        read_bytes(tree, "small", cap=100)
    assert read_bytes(tree, "big", cap=10, head=True) == b"a" * 10


def test_a_symlink_chain_inside_the_tree_is_followed(tree: Path) -> None:
    (tree / "config").mkdir()
    (tree / "config" / "Procfile.real").write_text("web: ./run\n")
    (tree / "config" / "link2").symlink_to("Procfile.real")
    (tree / "link1").symlink_to("config/link2")
    (tree / "Procfile").symlink_to(tree / "link1")  # absolute, but inside
    assert read_text(tree, "Procfile") == "web: ./run\n"


def test_a_symlink_chain_that_ends_outside_is_refused(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("x\n")
    (tree / "dir").mkdir()
    (tree / "dir" / "hop3").symlink_to("../../outside")
    (tree / "hop2").symlink_to("dir/hop3")
    (tree / "hop1").symlink_to("hop2")
    (tree / "Procfile").symlink_to("hop1")
    assert "leaves the pushed tree" in refused(tree, "Procfile")


def test_a_directory_link_leaving_the_tree_is_refused(tree: Path) -> None:
    (tree / "etc").symlink_to("/etc")
    assert "outside the pushed tree" in refused(tree, "etc/shadow")
    with pytest.raises(TreeFileRefused):
        locate(tree, "etc")


def test_a_symlink_loop_is_refused(tree: Path) -> None:
    (tree / "a").symlink_to("b")
    (tree / "b").symlink_to("a")
    (tree / "Procfile").symlink_to("a")
    assert "symbolic links" in refused(tree, "Procfile")


def test_a_directory_and_undecodable_text_are_refused(tree: Path) -> None:
    (tree / "Procfile").mkdir()
    assert "directory" in refused(tree, "Procfile")
    (tree / "app.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TreeFileRefused, match="not UTF-8"):
        read_text(tree, "app.json")
