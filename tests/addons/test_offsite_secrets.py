"""Where the off-host target's secret key comes from: a file only its owner may read
(read at each use), or the agent's environment, never needing berth.toml. Against the
local S3-compatible server; no Docker."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.backups.offsite import OffsiteFailed, OffsiteStore, read_secret_file
from agent.backups.settings import BackupSettings
from agent.config import parse_config
from agent.errors import ConfigError


def upload(store: OffsiteStore, tmp_path: Path, name: str) -> str:
    body = f"backup {name}".encode()
    path = tmp_path / name
    path.write_bytes(body)
    asyncio.run(store.upload(path, f"srv1/{name}", hashlib.sha256(body).hexdigest()))
    return f"srv1/{name}"


def test_a_secret_key_file_others_may_read_is_refused_in_one_line(
        s3: tuple[BackupSettings, Any], tmp_path: Path) -> None:
    settings, client = s3
    secret = tmp_path / "s3-secret"
    secret.write_text("test\n")
    secret.chmod(0o644)
    store = OffsiteStore(dataclasses.replace(settings, s3_secret_key="",
                                             s3_secret_key_file=str(secret)))
    with pytest.raises(OffsiteFailed) as refused:
        upload(store, tmp_path, "b1")
    assert str(refused.value) == (f"s3_secret_key_file {secret} is readable by others "
                                  f"(mode 0644): refused; chmod 600 {secret}")
    secret.chmod(0o600)
    key = upload(store, tmp_path, "b1")
    assert client.get_object(Bucket="offsite", Key=key)["Body"].read() == b"backup b1"
    secret.unlink()  # read at each use: its absence is seen at once
    with pytest.raises(OffsiteFailed, match="cannot be read"):
        upload(store, tmp_path, "b2")


def test_the_secret_key_may_come_from_the_agents_environment(
        s3: tuple[BackupSettings, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, client = s3
    keyless = dataclasses.replace(settings, s3_access_key="", s3_secret_key="")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no metadata service asked
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OffsiteFailed, match="credentials"):
        upload(OffsiteStore(keyless), tmp_path, "b1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    key = upload(OffsiteStore(keyless), tmp_path, "b1")
    assert client.get_object(Bucket="offsite", Key=key)["Body"].read() == b"backup b1"


def test_berth_toml_refuses_both_a_secret_and_a_secret_file() -> None:
    with pytest.raises(ConfigError, match="not both"):
        parse_config('[backups]\ns3_secret_key = "x"\ns3_secret_key_file = "/etc/berth/s3"\n')
    with pytest.raises(ConfigError, match="absolute path"):
        parse_config('[backups]\ns3_secret_key_file = "s3-secret"\n')
    parsed = parse_config('[backups]\ns3_bucket = "b"\ns3_secret_key_file = "/etc/berth/s3"\n')
    assert parsed.backups.s3_secret_key_file == "/etc/berth/s3"


def test_a_secret_key_file_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: the agent would hang forever."""
    fifo = tmp_path / "s3-secret"
    os.mkfifo(fifo, 0o600)
    done = threading.Event()
    answer: list[BaseException] = []

    def read() -> None:
        try:
            read_secret_file(fifo)
        except OffsiteFailed as exc:
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(10):
        with open(fifo, "wb"):  # lets the blocked reader go, so the test ends
            pass
        pytest.fail("reading the secret key file waited on the FIFO")
    assert [str(e) for e in answer] == [f"s3_secret_key_file {fifo} is not a regular file"]


def test_a_secret_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    """`chmod 600` is not enough: the file must be the agent's user's own."""
    secret = tmp_path / "s3-secret"
    secret.write_text("test\n")
    secret.chmod(0o600)
    assert read_secret_file(secret) == "test"
    other = os.geteuid() + 4242
    os.chown(secret, other, -1)  # the tests run as root, as the agent does
    with pytest.raises(OffsiteFailed) as refused:
        read_secret_file(secret)
    assert str(refused.value) == (
        f"s3_secret_key_file {secret} is owned by uid {other}, not by the agent's user "
        f"(uid {os.geteuid()}): refused; chown {os.geteuid()} {secret}")
