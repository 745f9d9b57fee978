import io
import subprocess
import tarfile

import pytest

from agent.sourcetree import BadArchive, unpack


def tar_of(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.mode = mode
    return info, data if kind == tarfile.REGTYPE else None


def test_git_archive_of_a_real_repo_unpacks(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("print('hi')\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "sub" / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("app.py")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    archive = subprocess.run(git + ["archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True).stdout
    unpack(io.BytesIO(archive), tmp_path / "out", max_bytes=10**6)
    assert (tmp_path / "out" / "app.py").read_text() == "print('hi')\n"
    assert (tmp_path / "out" / "sub" / "run.sh").stat().st_mode & 0o100
    assert (tmp_path / "out" / "link").is_symlink()


@pytest.mark.parametrize("members, problem", [
    ([member("/etc/passwd", data=b"x")], "leaves the tree"),
    ([member("../escape", data=b"x")], "leaves the tree"),
    ([member("a", tarfile.SYMTYPE, linkname="/etc"), member("a/passwd", data=b"x")],
     "symbolic link"),
    ([member("dev", tarfile.CHRTYPE)], "only files"),
    ([member("hard", tarfile.LNKTYPE, linkname="x")], "only files"),
    ([member("big", data=b"x" * 2000)], "larger than"),
])
def test_hostile_archives_write_nothing_outside(tmp_path, members, problem):
    with pytest.raises(BadArchive, match=problem):
        unpack(tar_of(*members), tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "escape").exists()


def test_not_a_tar(tmp_path):
    with pytest.raises(BadArchive, match="not a tar"):
        unpack(io.BytesIO(b"hello, not a tar" * 100), tmp_path / "out", max_bytes=10**6)
