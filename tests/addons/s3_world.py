"""A local S3-compatible server for the tests (moto in server mode, on loopback), with
a bucket `offsite` made (imported by name, like addon_world)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent.backups.settings import BackupSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3() -> Iterator[tuple[BackupSettings, Any]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    settings = BackupSettings(s3_bucket="offsite", s3_endpoint=f"http://127.0.0.1:{port}",
                              s3_access_key="test", s3_secret_key="test", s3_prefix="srv1")
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="offsite")
    try:
        yield settings, client
    finally:
        client.close()
        server.stop()
