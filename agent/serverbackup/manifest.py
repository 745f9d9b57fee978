"""The manifest of a server archive: what it holds, with sizes and checksums (pure).

An archive is a tar whose members live under a few sections (`state/berth.db`,
`config/berth.toml`, `repos/`, `certs/`, `storage/`, `backups/`) and whose last member is
`manifest.json`: the Berth version that wrote it, the apps, the add-ons and the dump each
is re-created from, and every file (size, SHA-256, mode), directory and link. A restore
accepts the archive only when what it unpacked is exactly what the manifest lists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from agent.errors import BerthError, echo
from agent.names import check_app

FORMAT = "berth-server-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "state/berth.db"
CONFIG = "config/berth.toml"
# Directories of data_dir an archive carries, as they are named there and in the tar.
TREES = ("repos", "certs", "storage", "backups")
SECTIONS = ("state", "config", *TREES)
LINK_SECTIONS = ("storage",)  # an app's own files may hold links; Berth's never do
MAX_PATH = 4096
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BadServerArchive(BerthError):
    """An archive a restore refuses, before anything on the server is touched."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"server archive refused: {problem}")
        self.problem = problem


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    mode: int


@dataclass(frozen=True)
class AddonEntry:
    """An add-on and the dump (a backup id of its app) it is re-created from."""

    app: str
    name: str
    kind: str
    backup: str
    version: str = ""  # the add-on's server version (postgres 16.4, redis 7.2.4)


@dataclass(frozen=True)
class Manifest:
    berth_version: str
    created_at: float
    apps: tuple[str, ...]
    addons: tuple[AddonEntry, ...]
    files: tuple[FileEntry, ...]
    dirs: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (path, target)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT, "format_version": self.format_version,
            "berth_version": self.berth_version, "created_at": self.created_at,
            "apps": list(self.apps),
            "addons": [vars(a) for a in self.addons],
            "files": [vars(f) for f in self.files],
            "dirs": list(self.dirs),
            "links": [{"path": p, "target": t} for p, t in self.links],
        }
        return json.dumps(data, indent=1, sort_keys=True).encode("utf-8")


def check_member(name: str, *, link: bool = False) -> str:
    """A member's path, normalised; refused when absolute, climbing out, outside the
    sections, or a link where links are not allowed."""
    if "\x00" in name or len(name) > MAX_PATH:
        raise BadServerArchive(f"member {echo(name)}: not a usable path")
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts:
        raise BadServerArchive(f"member {echo(name)}: its path leaves the archive")
    clean = "/".join(parts)
    if clean == MANIFEST and not link:
        return clean
    if parts[0] not in SECTIONS:
        raise BadServerArchive(f"member {echo(name)}: not part of a server archive")
    if link and parts[0] not in LINK_SECTIONS:
        raise BadServerArchive(f"member {echo(name)}: a link outside storage/")
    return clean


def parse(raw: bytes) -> Manifest:
    """The manifest from its JSON; anything malformed is one BadServerArchive line."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadServerArchive("manifest.json is not a Berth server manifest")
        version = int(data["format_version"])
        if version > FORMAT_VERSION:
            raise BadServerArchive(f"written in format {version} by Berth "
                                   f"{data.get('berth_version')}: upgrade Berth first")
        return Manifest(
            berth_version=str(data["berth_version"]), created_at=float(data["created_at"]),
            apps=tuple(check_app(str(a)) for a in data["apps"]),
            addons=tuple(_addon(a) for a in data["addons"]),
            files=tuple(_file(f) for f in data["files"]),
            dirs=tuple(check_member(str(d)) for d in data["dirs"]),
            links=tuple((check_member(str(link["path"]), link=True), str(link["target"]))
                        for link in data["links"]),
            format_version=version)
    except BadServerArchive:
        raise
    except BerthError as exc:
        raise BadServerArchive(f"manifest.json: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadServerArchive(f"manifest.json is malformed ({type(exc).__name__}: "
                               f"{echo(str(exc))})") from None


def _addon(data: Any) -> AddonEntry:
    return AddonEntry(app=check_app(str(data["app"])), name=str(data["name"]),
                      kind=str(data["kind"]), backup=str(data["backup"]),
                      version=str(data.get("version", "")))


def _file(data: Any) -> FileEntry:
    entry = FileEntry(path=check_member(str(data["path"])), size=int(data["size"]),
                      sha256=str(data["sha256"]), mode=int(data["mode"]) & 0o777)
    if entry.size < 0 or not _SHA256.fullmatch(entry.sha256):
        raise BadServerArchive(f"manifest.json: bad size or checksum for {echo(entry.path)}")
    return entry


@dataclass
class Unpacked:
    """What a restore found in the archive, to compare with its manifest."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> size, sha
    dirs: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)


def compare(manifest: Manifest, found: Unpacked) -> None:
    """Refuse an archive whose members are not exactly those its manifest lists."""
    listed = {f.path: (f.size, f.sha256) for f in manifest.files}
    for path in sorted(set(listed) | set(found.files)):
        if path not in found.files:
            raise BadServerArchive(f"{path} is in the manifest but not in the archive")
        if path not in listed:
            raise BadServerArchive(f"{path} is in the archive but not in the manifest")
        if listed[path][0] != found.files[path][0]:
            raise BadServerArchive(f"{path}: {found.files[path][0]} bytes, the manifest "
                                   f"says {listed[path][0]}")
        if listed[path][1] != found.files[path][1]:
            raise BadServerArchive(f"{path}: its SHA-256 is not the manifest's (damaged)")
    if dict(manifest.links) != found.links:
        raise BadServerArchive("the archive's links are not the manifest's")
    if DATABASE not in listed:
        raise BadServerArchive(f"it holds no {DATABASE}")
    for addon in manifest.addons:
        if not any(p.startswith(f"backups/{addon.app}/{addon.backup}-") for p in listed):
            raise BadServerArchive(f"the dump {addon.backup} of {addon.app}'s {addon.name} "
                                   "is missing")
