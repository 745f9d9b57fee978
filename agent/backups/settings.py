"""Settings of backups (the `[backups]` table of berth.toml): the off-host copy.

With `s3_bucket` set, each backup is uploaded after it is written, to any
S3-compatible service (`s3_endpoint`; empty means AWS itself), under
`s3_prefix/APP/FILE`, and verified against its SHA-256; a restore whose local file is
gone fetches it from there.

The secret key belongs in a file of its own (`s3_secret_key_file`, readable by its
owner only, read each time it is needed), or in the agent's environment
(`AWS_SECRET_ACCESS_KEY`, with `AWS_ACCESS_KEY_ID`: boto3's own chain), not in
berth.toml, which others may read; `s3_secret_key` stays for compatibility.
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
    s3_secret_key_file: str = ""
    s3_prefix: str = "berth"

    def __post_init__(self) -> None:
        if self.s3_secret_key and self.s3_secret_key_file:
            raise ValueError("set s3_secret_key_file or s3_secret_key, not both "
                             "(keep the secret out of berth.toml: s3_secret_key_file)")
        if self.s3_secret_key_file and not self.s3_secret_key_file.startswith("/"):
            raise ValueError(f"s3_secret_key_file must be an absolute path, not "
                             f"{self.s3_secret_key_file!r}")

    @property
    def offsite(self) -> bool:
        return bool(self.s3_bucket)
