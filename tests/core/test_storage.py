"""Persistent storage paths: what may be mounted, and where it lives on the host."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.storage import InvalidMountPath, check_mount_path, host_dir, prepare


@pytest.mark.parametrize("path", ["/app/data", "/data", "/home/berth/.cache", "/srv/up-loads_2"])
def test_data_paths_are_accepted(path: str) -> None:
    assert check_mount_path(path) == path


@pytest.mark.parametrize("path", [
    "", "app/data", "/", "/app/../etc", "/app/./data", "/app//data", "/app/data/",
    "/app/da ta", "/app/$HOME", "/etc", "/etc/nginx", "/proc/1", "/usr/local", "/dev/shm",
    "/app",
])
def test_other_paths_are_refused_with_one_line(path: str) -> None:
    with pytest.raises(InvalidMountPath) as caught:
        check_mount_path(path)
    assert "\n" not in str(caught.value)


def test_each_mount_has_its_own_directory_under_a_root_only_root(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    assert host_dir(root, "shop", "/app/data") == root / "shop" / "app%2Fdata"
    assert host_dir(root, "shop", "/app/data") != host_dir(root, "shop", "/app-data")
    made = prepare(root, "shop", "/app/data")
    assert made.is_dir()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(made.stat().st_mode) == 0o777
    (made / "keep.db").write_text("rows")
    assert prepare(root, "shop", "/app/data") == made and (made / "keep.db").exists()
