"""Off-host copies of backups in an S3-compatible bucket (boto3, blocking, in threads).

An upload is verified by reading the object back and comparing its SHA-256 with the
one recorded at capture, so a copy counts only once it is known to be whole. boto3 is
imported only when a bucket is configured. Every boto3 error leaves as `OffsiteFailed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from agent.backups.settings import BackupSettings
from agent.errors import BerthError

_CHUNK = 1024 * 1024


class OffsiteFailed(BerthError):
    status = 502


def read_secret_file(path: Path) -> str:
    """The secret in `path` (surrounding whitespace dropped); `OffsiteFailed` when it is
    missing, empty, not a regular file (a FIFO is refused, never waited on), owned by
    another user than the agent's, or readable by its group or others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as handle:
            _check_secret_file(path, os.fstat(fd))
            secret = handle.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        raise OffsiteFailed(f"s3_secret_key_file {path} cannot be read: "
                            f"{exc.strerror or exc}") from exc
    if not secret:
        raise OffsiteFailed(f"s3_secret_key_file {path} is empty")
    return secret


def _check_secret_file(path: Path, found: os.stat_result) -> None:
    """Only a regular file that the agent's user owns and alone may read."""
    if not stat.S_ISREG(found.st_mode):
        raise OffsiteFailed(f"s3_secret_key_file {path} is not a regular file")
    if found.st_uid != os.geteuid():
        raise OffsiteFailed(f"s3_secret_key_file {path} is owned by uid {found.st_uid}, not "
                            f"by the agent's user (uid {os.geteuid()}): refused; "
                            f"chown {os.geteuid()} {path}")
    if found.st_mode & 0o077:
        raise OffsiteFailed(
            f"s3_secret_key_file {path} is readable by others (mode "
            f"{stat.S_IMODE(found.st_mode):04o}): refused; chmod 600 {path}")


class OffsiteStore:
    def __init__(self, settings: BackupSettings) -> None:
        self._settings = settings
        self._client: Any = None
        self._client_secret = ""

    @property
    def bucket(self) -> str:
        return self._settings.s3_bucket

    def key(self, app: str, file_name: str) -> str:
        prefix = self._settings.s3_prefix.strip("/")
        return "/".join(p for p in (prefix, app, file_name) if p)

    @staticmethod
    def _errors() -> tuple[type[BaseException], ...]:
        """What boto3 and botocore raise (imported late, as boto3 is), and OS errors."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        return (Boto3Error, BotoCoreError, ClientError, OSError)

    def _s3(self) -> Any:
        """The client, made again when the secret key file changed since."""
        secret = self._secret()
        if self._client is None or secret != self._client_secret:
            import boto3  # heavy: only when a bucket is configured

            s = self._settings
            self._client = boto3.client(
                "s3", endpoint_url=s.s3_endpoint or None, region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key or None,
                aws_secret_access_key=secret or None)
            self._client_secret = secret
        return self._client

    def _secret(self) -> str:
        """The secret key: from `s3_secret_key_file` (read now, refused when others may
        read it), else berth.toml's `s3_secret_key`, else none (boto3's own chain: the
        agent's environment)."""
        name = self._settings.s3_secret_key_file
        if not name:
            return self._settings.s3_secret_key
        return read_secret_file(Path(name))

    async def upload(self, path: Path, key: str, sha256: str) -> None:
        await asyncio.to_thread(self._upload, path, key, sha256)

    def _upload(self, path: Path, key: str, sha256: str) -> None:
        try:
            self._s3().upload_file(str(path), self.bucket, key,
                                   ExtraArgs={"Metadata": {"sha256": sha256}})
            found = self._sha256_of_object(key)
        except self._errors() as exc:
            raise OffsiteFailed(f"upload to s3://{self.bucket}/{key} failed: {exc}") from exc
        if found != sha256:
            raise OffsiteFailed(f"s3://{self.bucket}/{key} does not read back as uploaded "
                                "(SHA-256 differs)")

    def _sha256_of_object(self, key: str) -> str:
        body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        try:
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    async def fetch(self, key: str, target: Path, sha256: str) -> None:
        """Download to `target` (via a temp name), refusing bytes that do not match."""
        await asyncio.to_thread(self._fetch, key, target, sha256)

    def _fetch(self, key: str, target: Path, sha256: str) -> None:
        temp = target.with_name(f".{target.name}.fetching")
        try:
            self._s3().download_file(self.bucket, key, str(temp))
        except self._errors() as exc:
            temp.unlink(missing_ok=True)
            raise OffsiteFailed(f"fetching s3://{self.bucket}/{key} failed: {exc}") from exc
        digest = hashlib.sha256()
        with temp.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            temp.unlink(missing_ok=True)
            raise OffsiteFailed(f"s3://{self.bucket}/{key} is not the backup recorded "
                                "(SHA-256 differs)")
        os.chmod(temp, 0o600)
        os.replace(temp, target)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._s3().delete_object, Bucket=self.bucket, Key=key)
        except self._errors() as exc:
            raise OffsiteFailed(f"deleting s3://{self.bucket}/{key} failed: {exc}") from exc
