"""Automatic HTTPS through a real agent: Pebble (Let's Encrypt's test server) issues over
HTTP-01 answered by the agent's proxy; the CLI shows and manages certificates."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.certs.pebble import Pebble
from tests.e2e.conftest import APPS, DOMAIN, running_stack
from tests.e2e.harness import free_port, world_readable_tempdir

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.pebble, pytest.mark.slow]

APP = "e2e-tls"
HOST = f"{APP}.{DOMAIN}"


@pytest.fixture(scope="module")
def stack(e2e_root):
    http_port = free_port()
    pebble = Pebble(world_readable_tempdir("berth-pebble-"), http_port).start()
    acme = (f'directory = "{pebble.directory}"\nca_bundle = "{pebble.ca_bundle}"\n'
            'preflight = false\nstaging_dry_run = false\nscan_interval = 2\nbackoff_min = 2\n')
    try:
        with running_stack(e2e_root, http_port=http_port, acme=acme) as (agent, user):
            yield agent, user, pebble
    finally:
        pebble.stop()


def https_get(port: int, host: str, root_pem: bytes, path: str = "/") -> tuple[int, dict[str, str], bytes, x509.Certificate]:
    context = ssl.create_default_context(cadata=root_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            der = tls.getpeercert(binary_form=True)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body, \
        x509.load_der_x509_certificate(der)


def wait_valid(agent, domain: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        certs = {c["domain"]: c for c in json.loads(agent.ok("certs", "--json"))}
        if certs.get(domain, {}).get("state") == "valid":
            return certs[domain]
        if time.monotonic() > deadline:
            raise AssertionError(f"no valid certificate for {domain}: {certs.get(domain)}")
        time.sleep(0.3)


def test_a_deployed_app_gets_a_certificate_and_https(stack):
    agent, user, pebble = stack
    work = user.repo(APPS / "dockerfile", APP)
    output = work.push().stderr
    assert f"is live: http://{HOST}" in output  # serving never waited for issuance
    status = wait_valid(agent, HOST)
    assert status["source"] == "acme" and status["days_left"] > 1
    code, _, body, cert = https_get(agent.https_port, HOST, pebble.root_pem())
    assert code == 200 and body == b"hello from a Dockerfile\n"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert HOST in names.get_values_for_type(x509.DNSName)
    redirect = agent.get(HOST, "/some/path?q=1")
    assert redirect[0] in (301, 308)
    challenge = agent.get(HOST, "/.well-known/acme-challenge/unknown-token")
    assert challenge[0] == 404  # not redirected


def test_hsts_and_a_second_domain(stack):
    agent, _, pebble = stack
    agent.ok("apps:set", APP, "hsts=on")
    _, headers, _, _ = https_get(agent.https_port, HOST, pebble.root_pem())
    assert "max-age=" in headers.get("strict-transport-security", "")
    agent.ok("domains:add", APP, "www.example.org")
    wait_valid(agent, "www.example.org")
    code, _, body, _ = https_get(agent.https_port, "www.example.org", pebble.root_pem())
    assert (code, body) == (200, b"hello from a Dockerfile\n")


def test_an_unknown_name_gets_no_certificate(stack):
    agent, _, pebble = stack
    with pytest.raises(ssl.SSLError):
        https_get(agent.https_port, "other.example.net", pebble.root_pem())


def self_signed(names: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth custom test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_custom_certificate_replaces_acme_and_can_be_removed(stack):
    agent, _, pebble = stack
    cert, key = self_signed([HOST, "www.example.org"])
    uncovered, uncovered_key = self_signed([HOST])
    refused = agent.cli("certs:add", APP, stdin=uncovered + uncovered_key)
    assert refused.returncode == 1 and "www.example.org" in refused.stderr
    mismatched = agent.cli("certs:add", APP, stdin=cert + uncovered_key)
    assert mismatched.returncode == 1 and mismatched.stderr.count("\n") == 1
    assert "match" in mismatched.stderr
    agent.ok("certs:add", APP, stdin=cert + key)
    code, _, _, served = https_get(agent.https_port, HOST, cert)
    assert code == 200 and served.subject.rfc4514_string() == "CN=berth custom test"
    agent.ok("certs:remove", APP)
    code, _, _, served = https_get(agent.https_port, HOST, pebble.root_pem())
    assert code == 200 and "berth custom test" not in served.subject.rfc4514_string()


def test_restart_reuses_certificates_without_new_orders(stack):
    agent, _, pebble = stack
    orders = pebble.orders
    agent.stop()
    agent.start()
    code, _, body, _ = https_get(agent.https_port, HOST, pebble.root_pem())
    assert (code, body) == (200, b"hello from a Dockerfile\n")
    time.sleep(3)  # a scan or two
    assert pebble.orders == orders
