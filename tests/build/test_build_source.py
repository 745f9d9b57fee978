"""SourceTree never reads outside the pushed tree: what would leave it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.build.packs.python import inspect
from agent.build.source import MAX_READ_BYTES, SourceTree
from agent.treefile import TreeFileRefused


def test_symlinks_out_of_the_tree_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    root = tmp_path / "tree"
    root.mkdir()
    (root / "requirements.txt").symlink_to(outside)
    (root / "up").symlink_to(tmp_path)
    tree = SourceTree(root)
    for name in ("requirements.txt", "../outside.txt", "up/outside.txt"):
        with pytest.raises(TreeFileRefused, match="(leaves|outside) the pushed tree"):
            tree.read_text(name)
    with pytest.raises(TreeFileRefused):
        tree.is_file("requirements.txt")
    with pytest.raises(TreeFileRefused):
        tree.names("up")


def test_symlink_inside_the_tree_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("flask\n")
    (tmp_path / "requirements.txt").symlink_to("real.txt")
    assert SourceTree(tmp_path).read_text("requirements.txt") == "flask\n"


def test_huge_or_binary_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"a" * (MAX_READ_BYTES + 1))
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    tree = SourceTree(tmp_path)
    with pytest.raises(TreeFileRefused, match="big refused: larger than its cap of 1 MiB"):
        tree.read_text("big")
    with pytest.raises(TreeFileRefused, match="not UTF-8"):
        tree.read_text("bin")
    assert tree.read_head("big", 4) == "aaaa"


def test_a_fifo_is_neither_absent_nor_read(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "requirements.txt")
    with pytest.raises(TreeFileRefused, match="not a regular file"):
        SourceTree(tmp_path).is_file("requirements.txt")


def test_escaping_requirements_symlink_cannot_leak_host_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "requirements.txt").write_text("-r other.txt\n")
    (root / "other.txt").symlink_to("/etc/hostname")
    with pytest.raises(TreeFileRefused, match="other.txt refused: symbolic link to /etc/hostname"):
        inspect(SourceTree(root), "3.12")


def test_a_link_out_among_the_entries_does_not_stop_django_detection(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("django\ngunicorn\n")
    (tmp_path / "manage.py").write_text("import sys\n")
    (tmp_path / "aaa").symlink_to("/usr/share")
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "settings.py").write_text("")
    (tmp_path / "shop" / "wsgi.py").write_text("application = get()\n")
    project = inspect(SourceTree(tmp_path), "3.12")
    assert project.django_project == "shop"
    assert project.web == "gunicorn shop.wsgi --bind 0.0.0.0:$PORT"
