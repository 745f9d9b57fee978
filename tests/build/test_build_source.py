"""SourceTree never reads outside the pushed tree."""

from __future__ import annotations

from pathlib import Path

from agent.build.packs.python import inspect
from agent.build.source import MAX_READ_BYTES, SourceTree


def test_symlinks_out_of_the_tree_read_as_absent(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    root = tmp_path / "tree"
    root.mkdir()
    (root / "requirements.txt").symlink_to(outside)
    (root / "up").symlink_to(tmp_path)
    tree = SourceTree(root)
    assert tree.read_text("requirements.txt") is None
    assert not tree.is_file("requirements.txt")
    assert tree.read_text("../outside.txt") is None
    assert tree.read_text("up/outside.txt") is None
    assert tree.names("up") == ()


def test_symlink_inside_the_tree_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("flask\n")
    (tmp_path / "requirements.txt").symlink_to("real.txt")
    assert SourceTree(tmp_path).read_text("requirements.txt") == "flask\n"


def test_huge_or_binary_files_read_as_absent(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"a" * (MAX_READ_BYTES + 1))
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    tree = SourceTree(tmp_path)
    assert tree.read_text("big") is None and tree.read_text("bin") is None


def test_escaping_requirements_symlink_cannot_leak_host_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "requirements.txt").write_text("-r other.txt\n")
    (root / "other.txt").symlink_to("/etc/hostname")
    try:
        inspect(SourceTree(root), "3.12")
    except Exception as exc:  # noqa: BLE001 - asserting on the error's text
        assert "other.txt" in str(exc) and "missing or unreadable" in str(exc)
    else:
        raise AssertionError("an escaping include must not be read")
