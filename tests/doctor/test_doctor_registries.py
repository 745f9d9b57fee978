"""doctor's registries check from where builds run: a real container of the build base
image (the stand-in) on the build's network probes a local HTTPS "registry" the test
starts on the Docker bridge's gateway address, with its own self-signed certificate.
Trusted through build.ca_bundle it is reachable; without it the TLS failure names
build.ca_bundle; a name that does not resolve, a closed port, and a server the host
reaches (on its loopback) but containers cannot are each told apart; the probe container
is gone afterwards, also when its deadline cut it short or it could not start."""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.build.settings import BuildSettings
from agent.config import Config
from agent.doctor import registries
from tests.conftest import STAND_IN_IMAGE

pytestmark = pytest.mark.docker


@dataclass(frozen=True)
class Registry:
    """The local stand-in registry: its CA (its own certificate) and where it listens."""

    ca: Path
    gateway: str  # the bridge's gateway: this host, as containers reach it
    port: int  # HTTPS on the gateway address
    loopback_port: int  # HTTPS on 127.0.0.1 only: this host reaches it, containers do not
    silent_port: int  # accepts connections on the gateway, never answers
    closed_port: int  # nothing listens there


def _certificate(directory: Path, addresses: list[str]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in registry")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "registry-ca.pem", directory / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _serve_tls(listener: socket.socket, context: ssl.SSLContext) -> None:
    """Complete each client's handshake (in its own thread), then wait for it to go."""

    def answer(connection: socket.socket) -> None:
        connection.settimeout(10)
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass

    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=answer, args=(connection,), daemon=True).start()


def _gateway() -> str:
    client = docker.from_env()
    try:
        return str(client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"])
    finally:
        client.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    gateway = _gateway()
    cert, key = _certificate(tmp_path_factory.mktemp("registry"), [gateway, "127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sockets = [socket.create_server((gateway, 0)), socket.create_server(("127.0.0.1", 0)),
               socket.create_server((gateway, 0))]
    for listener in sockets[:2]:
        threading.Thread(target=_serve_tls, args=(listener, context), daemon=True).start()
    with socket.socket() as unused:
        unused.bind((gateway, 0))
        closed = unused.getsockname()[1]
    try:
        yield Registry(cert, gateway, *(s.getsockname()[1] for s in sockets), closed)
    finally:
        for listener in sockets:
            listener.close()


def _config(**build: object) -> Config:
    settings = {"python_image": STAND_IN_IMAGE, **build}
    return Config(build=BuildSettings(**settings))  # type: ignore[arg-type]


def _probe_containers() -> list[str]:
    client = docker.from_env()
    try:
        return [c.name for c in client.containers.list(
            all=True, filters={"label": "berth.doctor=registries"})]
    finally:
        client.close()


def test_a_registry_is_reached_from_a_build_container_trusting_build_ca_bundle(registry):
    target = f"{registry.gateway}:{registry.port}"
    [untrusted] = registries.check(_config(), [target])
    assert untrusted.level == "fail", untrusted
    assert untrusted.message.startswith("TLS verification failed from a build container")
    assert "set build.ca_bundle" in untrusted.fix
    [trusted] = registries.check(_config(ca_bundle=registry.ca), [target])
    assert (trusted.level, trusted.message) == ("ok", "reachable from a build container")
    assert _probe_containers() == []


def test_what_builds_cannot_reach_is_named_and_compared_with_this_host(registry):
    found = registries.check(_config(ca_bundle=registry.ca), [
        "registry.invalid", f"{registry.gateway}:{registry.closed_port}",
        f"127.0.0.1:{registry.loopback_port}"])
    unresolved, closed, loopback = found
    assert unresolved.level == "fail"
    assert unresolved.message.startswith("a build container cannot resolve the name")
    assert "this host cannot either (cannot resolve the name)" in unresolved.message
    assert closed.message.startswith("a build container cannot connect (")
    assert "this host cannot either (cannot connect)" in closed.message
    assert closed.fix.startswith("check the server's outbound network")
    # The container's 127.0.0.1 is its own: the host gets through where builds do not.
    assert loopback.level == "fail" and loopback.message.startswith(
        "a build container cannot connect (") and "this host reaches it" in loopback.message
    assert "FORWARD" in loopback.fix
    assert _probe_containers() == []


def test_the_probe_container_goes_at_its_deadline(registry, monkeypatch):
    monkeypatch.setattr(registries, "TIMEOUT", 3.0)  # each connection: past the deadline
    started = time.monotonic()
    [silent] = registries.check(_config(), [f"{registry.gateway}:{registry.silent_port}"],
                                deadline=1.5)
    assert silent.level == "fail"
    assert silent.message.startswith("a build container got no answer (no answer within 1.5 s)")
    assert "this host cannot either (connects, but the TLS handshake" in silent.message
    assert time.monotonic() - started < 1.5 + 3.0 + 10
    assert _probe_containers() == []


def test_without_the_base_image_the_host_stands_in_with_a_warning(registry):
    config = _config(ca_bundle=registry.ca, python_image="berth-absent/py:{version}")
    warning, reached = registries.check(config, [f"{registry.gateway}:{registry.port}"])
    assert warning.level == "warn" and warning.subject == "registries"
    assert "berth-absent/py:3.12 is not on this server yet" in warning.message
    assert (reached.level, reached.message) == ("ok", "reachable from this host")


@pytest.fixture
def no_python_image(tmp_path: Path) -> Iterator[str]:
    """An image with no files at all: a container of it cannot start python3."""
    tag = f"berth-test/no-python:{tmp_path.name.lower()}"
    client = docker.from_env()
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    client.api.import_image_from_data(empty.getvalue(), repository=tag)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)
        client.close()


def test_a_probe_container_that_cannot_start_is_removed_and_said(registry, no_python_image):
    [warning, reached] = registries.check(_config(python_image=no_python_image,
                                                  ca_bundle=registry.ca),
                                          [f"{registry.gateway}:{registry.port}"])
    assert warning.level == "warn" and warning.message.startswith(
        f"not checked from a build container: a container of {no_python_image} did not run")
    assert "python3" in warning.message and "build.python_image" in warning.fix
    assert (reached.level, reached.message) == ("ok", "reachable from this host")
    assert _probe_containers() == []


def test_an_unreadable_ca_bundle_is_one_failing_line(tmp_path):
    empty = tmp_path / "bundle.pem"
    empty.write_text("not a certificate\n")
    [found] = registries.check(_config(ca_bundle=empty), ["pypi.org"])
    assert found.level == "fail" and "holds no PEM certificate" in found.message
    assert _probe_containers() == []


_AS_BERTH_USER = """
from agent.build.settings import BuildSettings
from agent.config import Config
from agent.doctor import registries
warning, _ = registries.check(Config(build=BuildSettings(python_image={image!r})),
                              ["127.0.0.1:9"], deadline=10.0)
print(warning.level, warning.message, "|", warning.fix, sep="\\n")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to a user without Docker")
def test_a_user_without_docker_is_told_to_run_doctor_as_root():
    # Doctor over SSH runs as the berth user, which may not use the engine's socket.
    script = _AS_BERTH_USER.format(image=STAND_IN_IMAGE)
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         sys.executable, "-c", script],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.returncode == 0, done.stderr
    level, message, _, fix = done.stdout.splitlines()
    assert (level, message) == ("warn", ("not checked from a build container: this user may "
                                "not use the Docker engine (permission denied on its socket)"))
    assert fix == "run `berth doctor` on the server as root to check from a build container"
