"""`python -m agent.proxy`: runs on its own with routes and certificates from the command line."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.proxy.conftest import CertificateAuthority

ROOT = Path(__file__).resolve().parents[2]


def test_standalone_proxy_serves_http_and_https(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    chain, key = authority.issue("app.test")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    backend = subprocess.Popen(
        [sys.executable, "-m", "tests.proxy.backend", "solo"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    proxy = None
    try:
        assert backend.stdout is not None
        backend_port = int(backend.stdout.readline().split()[1])
        proxy = subprocess.Popen(
            [sys.executable, "-m", "agent.proxy", "--listen", "127.0.0.1", "--http-port", "0",
             "--https-port", "0", "--route", f"app.test=127.0.0.1:{backend_port}",
             "--cert", f"app.test={tmp_path / 'chain.pem'},{tmp_path / 'key.pem'}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        match = re.search(r"http=(\d+) https=(\d+)", line)
        assert match, line
        http_port, https_port = int(match.group(1)), int(match.group(2))
        with socket.create_connection(("127.0.0.1", http_port)) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: app.test\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 301 ")  # has a cert: to HTTPS
        context = authority.client_context()
        with socket.create_connection(("127.0.0.1", https_port)) as raw:
            with context.wrap_socket(raw, server_hostname="app.test") as tls:
                tls.sendall(b"GET /hello HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
                answer = b""
                while data := tls.recv(4096):
                    answer += data
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello from solo")
        proxy.terminate()
        assert proxy.wait(10) == 0
        assert "host=app.test method=GET path=/hello status=200" in proxy.stderr.read()
    finally:
        for process in (proxy, backend):
            if process is not None:
                if process.poll() is None:
                    process.terminate()
                    process.wait(10)
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        stream.close()


def test_bad_certificate_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_bytes(b"nope")
    result = subprocess.run(
        [sys.executable, "-m", "agent.proxy", "--http-port", "0",
         "--cert", f"app.test={tmp_path / 'bad.pem'},{tmp_path / 'bad.pem'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "berth proxy: certificate for 'app.test' rejected: the chain is not PEM certificates"
    ]
