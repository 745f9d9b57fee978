"""A backup's record, its id and file name (pure).

Ids count up per app (`b1`, `b2`, ...). A backup is recorded only once its file is
complete and renamed into place, with its size, SHA-256 and the server's version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import BerthError, echo

_ID = re.compile(r"b([1-9][0-9]{0,8})")
EXTENSIONS = {"postgres": "dump", "redis": "rdb"}


class BackupNotFound(BerthError):
    status = 404

    def __init__(self, app: str, backup_id: str) -> None:
        super().__init__(f"{app} has no backup {backup_id} (berth backups {app})")


class InvalidBackupId(BerthError):
    pass


class RestoreFailed(BerthError):
    status = 502


def parse_id(text: str) -> int:
    match = _ID.fullmatch(text)
    if not match:
        raise InvalidBackupId(f"invalid backup id {echo(text)}: e.g. b12 (berth backups APP)")
    return int(match.group(1))


@dataclass(frozen=True)
class Backup:
    app: str
    number: int
    addon: str
    kind: str
    size: int
    sha256: str
    server_version: str
    created_at: float
    reason: str  # manual, scheduled, final

    @property
    def id(self) -> str:
        return f"b{self.number}"

    @property
    def file_name(self) -> str:
        return file_name(self.number, self.addon, self.kind)

    def public(self) -> dict[str, object]:
        return {"id": self.id, "app": self.app, "addon": self.addon, "kind": self.kind,
                "size": self.size, "sha256": self.sha256,
                "server_version": self.server_version, "created_at": self.created_at,
                "reason": self.reason, "file": self.file_name}


def file_name(number: int, addon: str, kind: str) -> str:
    return f"b{number}-{addon}.{EXTENSIONS[kind]}"


@dataclass(frozen=True)
class UploadFailure:
    """A backup's failed uploads to the off-host target: how many, the last one, why."""

    attempts: int
    attempted_at: float
    error: str
