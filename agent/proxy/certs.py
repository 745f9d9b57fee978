"""The certificate store: one TLS context per host name, chosen by SNI at handshake time.

`put` checks a certificate chain and key before anything changes (they parse, the key
matches, the certificate names the host and has not expired, and it is one a handshake
can use without stalling the proxy: `serving_refusal`) and then swaps in a new
`ssl.SSLContext` for that name: handshakes from then on get the new certificate, open
connections keep theirs, nothing restarts. The HTTPS listener (`tls_listener`) asks
`context_for(sni_name)`; a name the store does not hold gets a TLS alert, never another
site's certificate.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.proxy.errors import CertificateRejected
from agent.proxy.hosts import wildcard_parent

log = logging.getLogger(__name__)

MAX_RSA_BITS = 4096
MAX_KEY_PEM_BYTES = 8 * 1024  # a 4096-bit RSA key is about 3.3 KB of PEM


class CertificateStore:
    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def put(self, hostname: str, fullchain_pem: bytes, key_pem: bytes) -> None:
        """Serve this chain and key for `hostname` (exact or `*.example.com`)."""
        name = hostname.lower()
        _check_pair(name, fullchain_pem, key_pem)
        self._contexts[name] = _server_context(name, fullchain_pem, key_pem)
        log.info("certificate installed host=%s", name)

    def remove(self, hostname: str) -> None:
        self._contexts.pop(hostname.lower(), None)

    def names(self) -> frozenset[str]:
        return frozenset(self._contexts)

    def covers(self, host: str) -> bool:
        """True when a handshake for `host` would succeed."""
        return host in self._contexts or wildcard_parent(host) in self._contexts

    def context_for(self, host: str) -> ssl.SSLContext | None:
        context = self._contexts.get(host)
        if context is None:
            context = self._contexts.get(wildcard_parent(host))
        return context


def _base_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _server_context(name: str, fullchain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = _base_context()
    # load_cert_chain reads files only: hand it a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="berth-cert-") as directory:
        chain_path = Path(directory) / "fullchain.pem"
        key_path = Path(directory) / "key.pem"
        for path, data in ((chain_path, fullchain_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        try:
            context.load_cert_chain(chain_path, key_path)
        except ssl.SSLError as exc:
            raise CertificateRejected(name, f"TLS library refused it: {exc.reason}") from exc
    return context


def serving_refusal(leaf: x509.Certificate) -> str | None:
    """Why the proxy will not serve this certificate, or None.

    Every TLS handshake signs with the key on the event loop's thread: an RSA key over
    `MAX_RSA_BITS` would make each one stall every connection of every app (a 16384-bit
    signature takes about a second). A certificate whose extended key usage leaves out
    TLS servers (a client certificate) would fail every client's check.
    """
    public = leaf.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size > MAX_RSA_BITS:
        return (
            f"its RSA key has {public.key_size} bits; at most {MAX_RSA_BITS} are served "
            "(an EC P-256 key is faster and as strong)"
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.SERVER_AUTH not in usage and (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usage
    ):
        return "it is not a server certificate (its extended key usage leaves out serverAuth)"
    return None


def _check_pair(name: str, fullchain_pem: bytes, key_pem: bytes) -> None:
    try:
        chain = x509.load_pem_x509_certificates(fullchain_pem)
    except ValueError as exc:
        raise CertificateRejected(name, "the chain is not PEM certificates") from exc
    leaf = chain[0]
    refusal = serving_refusal(leaf)  # before the key is parsed: a huge one is slow to check
    if refusal is not None:
        raise CertificateRejected(name, refusal)
    if len(key_pem) > MAX_KEY_PEM_BYTES:
        raise CertificateRejected(name, f"the key is larger than {MAX_KEY_PEM_BYTES} bytes")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateRejected(name, "the key is not an unencrypted PEM private key") from exc
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise CertificateRejected(name, "the key does not match the certificate")
    if leaf.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        raise CertificateRejected(name, f"expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    names = _certificate_names(leaf)
    if name not in names and wildcard_parent(name) not in names:
        raise CertificateRejected(name, "the certificate does not name this host")


def _certificate_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return {n.lower() for n in san.value.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return {str(a.value).lower() for a in common}
