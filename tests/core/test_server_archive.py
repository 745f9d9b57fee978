"""The server archive: what is written unpacks to the same bytes, and a hostile or damaged
archive is refused with one line before anything outside the staging directory exists."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from agent.serverbackup import archive
from agent.serverbackup.archive import Source
from agent.serverbackup.manifest import AddonEntry, BadServerArchive, parse

BUDGET = 10 * 1024 * 1024


def _server(root: Path) -> list[Source]:
    (root / "repos/shop.git/objects").mkdir(parents=True)
    (root / "repos/shop.git/HEAD").write_text("ref: refs/heads/main\n")
    (root / "storage/shop/uploads").mkdir(parents=True)
    (root / "storage/shop/uploads/cat.bin").write_bytes(os.urandom(300_000))
    os.chmod(root / "storage/shop/uploads/cat.bin", 0o640)
    (root / "storage/shop/latest").symlink_to("uploads/cat.bin")
    (root / "backups/shop").mkdir(parents=True)
    (root / "backups/shop/b1-postgres.dump").write_bytes(b"PGDMP" + b"x" * 100)
    (root / "berth.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    return [Source("state/berth.db", root / "berth.db"),
            Source("repos", root / "repos"), Source("storage", root / "storage"),
            Source("backups", root / "backups"), Source("certs", root / "certs")]


def _write(root: Path, sources: list[Source]) -> Path:
    target = root / "server.tar"
    with target.open("wb") as sink:
        archive.write(sink, sources, berth_version="1.0", apps=["shop"],
                      addons=[AddonEntry("shop", "postgres", "postgres", "b1", "16.4")])
    return target


def test_an_archive_unpacks_to_the_same_files_links_and_modes(tmp_path: Path) -> None:
    server = tmp_path / "server"
    written = _write(tmp_path, _server(server))
    staging = tmp_path / "staging"
    manifest = archive.unpack(written, staging, budget=BUDGET)
    assert manifest.apps == ("shop",) and manifest.addons[0].backup == "b1"
    assert manifest.addons[0].version == "16.4" and manifest.berth_version == "1.0"
    original = (server / "storage/shop/uploads/cat.bin").read_bytes()
    assert (staging / "storage/shop/uploads/cat.bin").read_bytes() == original
    assert (staging / "storage/shop/uploads/cat.bin").stat().st_mode & 0o777 == 0o640
    assert os.readlink(staging / "storage/shop/latest") == "uploads/cat.bin"
    assert (staging / "repos/shop.git/HEAD").read_text() == "ref: refs/heads/main\n"
    assert (staging / "state/berth.db").read_bytes() == (server / "berth.db").read_bytes()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return target


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def _manifest(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    import hashlib

    return json.dumps({
        "format": "berth-server-backup", "format_version": 1, "berth_version": "1.0",
        "created_at": 0, "apps": [], "addons": [], "dirs": [],
        "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                   "mode": 0o600} for p, d in files.items()],
        "links": [{"path": p, "target": t} for p, t in (links or {}).items()]}).encode()


DB = {"state/berth.db": b"db"}


@pytest.mark.parametrize("members, problem", [
    ([(_member("/etc/cron.d/evil"), b"x")], "its path leaves the archive"),
    ([(_member("repos/../../evil"), b"x")], "its path leaves the archive"),
    ([(_member("home/evil"), b"x")], "not part of a server archive"),
    ([(_member("repos/x", tarfile.SYMTYPE, "/etc"), None)], "a link outside storage/"),
    ([(_member("storage/a", tarfile.SYMTYPE, "/etc"), None),
      (_member("storage/a/cron.d"), b"x")], "passes through a symbolic link"),
    ([(_member("storage/dev", tarfile.CHRTYPE), None)], "only files, directories and links"),
    ([(_member("storage/h", tarfile.LNKTYPE, "state/berth.db"), None)],
     "only files, directories and links"),
    ([(_member("state/berth.db"), b"db"), (_member("state/berth.db"), b"db")], "appears twice"),
    ([(_member("state/berth.db"), b"db")], "holds no manifest.json"),
    ([(_member("state/berth.db"), b"db"), (_member("storage/extra"), b"e"),
      (_member("manifest.json"), _manifest(DB))], "in the archive but not in the manifest"),
    ([(_member("state/berth.db"), b"dB"), (_member("manifest.json"), _manifest(DB))],
     "its SHA-256 is not the manifest's"),
    ([(_member("manifest.json", tarfile.SYMTYPE, "/etc/shadow"), None)],
     "not part of a server archive"),
    ([(_member("state/berth.db"), b"db"), (_member("manifest.json"), b"{")],
     "manifest.json is malformed"),
])
def test_a_hostile_or_damaged_archive_is_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], problem: str,
) -> None:
    hostile = _tar(members, tmp_path / "hostile.tar")
    with pytest.raises(BadServerArchive, match="server archive refused: .*" + problem):
        archive.unpack(hostile, tmp_path / "staging", budget=BUDGET)
    assert not (tmp_path / "etc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar", "staging"]


def test_an_archive_larger_than_the_room_left_is_refused(tmp_path: Path) -> None:
    big = _tar([(_member("storage/big"), b"x" * 5000)], tmp_path / "big.tar")
    with pytest.raises(BadServerArchive, match="more than 4096 bytes"):
        archive.unpack(big, tmp_path / "staging", budget=4096)


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    written = _write(tmp_path, _server(tmp_path / "server"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(written.read_bytes()[:200_000])
    with pytest.raises(BadServerArchive, match="not a complete tar archive"):
        archive.unpack(cut, tmp_path / "staging", budget=BUDGET)


def test_a_manifest_from_a_newer_format_names_the_upgrade() -> None:
    raw = json.dumps({"format": "berth-server-backup", "format_version": 9,
                      "berth_version": "9.0"}).encode()
    with pytest.raises(BadServerArchive, match="written in format 9 by Berth 9.0: upgrade"):
        parse(raw)
