"""Certificate and account files under the certificate directory (data_dir/certs).

Layout, keyed by the ACME directory URL so staging and production never mix:

    acme/<directory-key>/account.key       the account's EC P-256 key (PEM)
    acme/<directory-key>/account.json      {"uri": ..., "email": ...}
    acme/<directory-key>/live/<domain>.pem  private key + full chain, one file
    custom/<app>.pem                        a user's own key + chain for an app

Key and chain share one file (the combined format HAProxy uses) so that replacing a
certificate is one atomic rename: a crash can never leave a new key next to an old chain.
Every file is written to a temporary name, fsynced, renamed into place, mode 0600, in
directories of mode 0700. Names reaching this module were validated by `agent.names`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_UNSAFE = re.compile(r"[^a-z0-9.-]+")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain (leaf first) and its private key, both PEM."""

    chain_pem: bytes
    key_pem: bytes

    def combined(self) -> bytes:
        return self.key_pem.rstrip(b"\n") + b"\n" + self.chain_pem.lstrip(b"\n")

    @classmethod
    def split(cls, combined: bytes) -> KeyPair:
        keys: list[bytes] = []
        certs: list[bytes] = []
        for match in _PEM_BLOCK.finditer(combined):
            block = match.group(0).rstrip(b"\r\n") + b"\n"
            (certs if match.group(1) == b"CERTIFICATE" else keys).append(block)
        return cls(b"".join(certs), b"".join(keys))


@dataclass(frozen=True)
class AccountRecord:
    key_pem: bytes
    uri: str | None
    email: str


def directory_key(url: str) -> str:
    """A readable, collision-free directory name for an ACME directory URL."""
    parts = urlsplit(url)
    readable = _UNSAFE.sub("-", f"{parts.netloc}{parts.path}".lower()).strip("-.")
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{readable[:80]}-{digest}"


class CertStore:
    """Reads and writes the files of one certificate directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ACME accounts -----------------------------------------------------------------
    def load_account(self, directory: str) -> AccountRecord | None:
        base = self._acme_dir(directory)
        try:
            key_pem = (base / "account.key").read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta = json.loads((base / "account.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            meta = {}
        uri = meta.get("uri")
        return AccountRecord(key_pem, uri if isinstance(uri, str) else None,
                             str(meta.get("email", "")))

    def save_account(self, directory: str, record: AccountRecord) -> None:
        base = self._acme_dir(directory)
        key_path = base / "account.key"
        if not key_path.exists() or key_path.read_bytes() != record.key_pem:
            write_atomic(key_path, record.key_pem)
        meta = {"directory": directory, "uri": record.uri, "email": record.email}
        write_atomic(base / "account.json", json.dumps(meta, indent=2).encode() + b"\n")

    # ACME certificates -------------------------------------------------------------
    def load_acme(self, directory: str, domain: str) -> KeyPair | None:
        return _read_pair(self._live(directory) / f"{domain}.pem")

    def save_acme(self, directory: str, domain: str, pair: KeyPair) -> None:
        write_atomic(self._live(directory) / f"{domain}.pem", pair.combined())

    def acme_domains(self, directory: str) -> list[str]:
        live = self._live(directory)
        if not live.is_dir():
            return []
        return sorted(p.stem for p in live.glob("*.pem"))

    # Custom certificates -----------------------------------------------------------
    def load_custom(self, app: str) -> KeyPair | None:
        return _read_pair(self.root / "custom" / f"{app}.pem")

    def save_custom(self, app: str, pair: KeyPair) -> None:
        write_atomic(self.root / "custom" / f"{app}.pem", pair.combined())

    def remove_custom(self, app: str) -> bool:
        try:
            (self.root / "custom" / f"{app}.pem").unlink()
        except FileNotFoundError:
            return False
        return True

    def _acme_dir(self, directory: str) -> Path:
        return self.root / "acme" / directory_key(directory)

    def _live(self, directory: str) -> Path:
        return self._acme_dir(directory) / "live"


def _read_pair(path: Path) -> KeyPair | None:
    try:
        return KeyPair.split(path.read_bytes())
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename; the file is 0600, its parents 0700."""
    _make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _make_private_dirs(path: Path) -> None:
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
