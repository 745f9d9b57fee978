"""Settings of backups (the `[backups]` table of berth.toml): the off-host copy.

With `s3_bucket` set, each backup is uploaded after it is written, to any
S3-compatible service (`s3_endpoint`; empty means AWS itself), under
`s3_prefix/APP/FILE`, and verified against its SHA-256; a restore whose local file is
gone fetches it from there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackupSettings:
    s3_bucket: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_prefix: str = "berth"

    @property
    def offsite(self) -> bool:
        return bool(self.s3_bucket)
