"""Running real Pebble and pebble-challtestsrv for the certificate tests and benchmark.

`start_pebble` makes a small CA and a certificate for Pebble's own TLS listener (the
Debian package ships none), starts pebble-challtestsrv as the DNS server that answers
every name with 127.0.0.1 (IPv6 off, or validation would go to ::1), then Pebble with
PEBBLE_VA_NOSLEEP=1 and its HTTP-01 port pointed at the port under test. Everything
listens on free loopback ports; `stop()` ends both processes.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (challtestsrv's DNS needs both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_listener_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a cert for localhost/127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test pebble-listener CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "listener-ca.pem", directory / "listener.pem", directory / "listener.key"
    paths[0].write_bytes(_pem(ca))
    paths[1].write_bytes(_pem(leaf))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _wait_tcp(port: int, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} did not listen on {port}: {log.read_text()[-2000:]}")


@dataclass
class Pebble:
    workdir: Path
    http_port: int
    validity: int | None = None
    listen_port: int = 0
    management_port: int = 0
    dns_port: int = 0
    ca_bundle: Path = Path()
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    _cert: Path = Path()
    _key: Path = Path()
    _challtest_mgmt: int = 0

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    @property
    def log_text(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)

    def start(self, timeout: float = 20.0, *, same_ports: bool = False) -> Pebble:
        if not same_ports:
            self.ca_bundle, self._cert, self._key = make_listener_cert(self.workdir)
            self.listen_port, self.management_port = free_port(), free_port()
            self.dns_port, self._challtest_mgmt = free_port(), free_port()
        cert, key, challtest_mgmt = self._cert, self._key, self._challtest_mgmt
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.listen_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}
        if self.validity is not None:
            config["pebble"]["certificateValidityPeriod"] = self.validity
        config_path = self.workdir / "pebble.json"
        config_path.write_text(json.dumps(config))
        deadline = time.monotonic() + timeout
        dns = self._spawn("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv6", "", "-defaultIPv4", "127.0.0.1",
            "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
            "-tlsalpn01", "", "-management", f"127.0.0.1:{challtest_mgmt}"], {})
        _wait_tcp(self.dns_port, dns, self.logs[-1], deadline)
        # No artificial validation delay; no nonce rejections (they only cost retries);
        # reuse a valid authorization as rarely as Pebble allows: 0 still reuses about one
        # in 100 (a test that needs a real validation after a success uses a new account).
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        pebble = self._spawn("pebble", ["pebble", "-config", str(config_path),
                                        "-dnsserver", f"127.0.0.1:{self.dns_port}"], env)
        _wait_tcp(self.listen_port, pebble, self.logs[-1], deadline)
        _wait_tcp(self.management_port, pebble, self.logs[-1], deadline)
        return self

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env}, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    def restart(self) -> Pebble:
        """A fresh Pebble (new CA, no accounts, no orders) at the same directory URL."""
        self.stop()
        return self.start(same_ports=True)

    @property
    def orders(self) -> int:
        """Orders Pebble has created, over all its runs (counted from its logs)."""
        return sum(log.read_text(errors="replace").count('Added order "') for log in self.logs)

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            body: bytes = response.read()
            return body

    def root_pem(self) -> bytes:
        """Pebble's issuing root (regenerated on every start)."""
        return self._get(f"https://127.0.0.1:{self.management_port}/roots/0")

    def cert_status(self, serial: str) -> dict[str, object]:
        url = f"https://127.0.0.1:{self.management_port}/cert-status-by-serial/{serial}"
        result: dict[str, object] = json.loads(self._get(url))
        return result
