"""The certificate a Postgres add-on serves TLS with, made by Berth (self-signed).

Apps written for Heroku connect with `sslmode=require`, which encrypts without checking
the issuer; the certificate names the add-on's host name so `verify-full` against this
certificate works too. Made once per add-on and kept beside its data.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "server.crt"
KEY_FILE = "server.key"
VALID_DAYS = 3650


def ensure_certificate(directory: Path, host: str) -> None:
    """Write server.crt and server.key (0600) into `directory` unless both exist."""
    if (directory / CERT_FILE).exists() and (directory / KEY_FILE).exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / KEY_FILE
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    (directory / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
