"""Keys, CSRs and certificate inspection with `cryptography` (pure: bytes in, values out).

Everything a certificate is judged by lives here: which names it covers, when it starts
and ends, who issued it, and whether a private key belongs to it. Bad PEM raises
`InvalidPem`, a foreign key `KeyMismatch`: one clear line, never a library traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from agent.certs.errors import InvalidPem, KeyMismatch
from agent.proxy.certs import MAX_KEY_PEM_BYTES, serving_refusal

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertInfo:
    """What the manager needs to know about a certificate (its chain's first entry)."""

    names: tuple[str, ...]
    not_before: float  # epoch seconds
    not_after: float
    issuer: str
    serial: str  # lowercase hex, as Pebble's cert-status-by-serial wants it

    @property
    def lifetime(self) -> float:
        return self.not_after - self.not_before

    def covers(self, domain: str) -> bool:
        return any(name_covers(name, domain) for name in self.names)


def name_covers(name: str, domain: str) -> bool:
    """Whether a certificate name (possibly `*.example.com`) matches `domain`."""
    name, domain = name.lower(), domain.lower()
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return name == domain


def generate_key(key_type: str) -> PrivateKey:
    """A fresh certificate key: "ecdsa-p256" or "rsa2048"."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}")


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_csr(domain: str, key: PrivateKey) -> bytes:
    """A PEM CSR for exactly one DNS name (the subject left empty, as CAs ignore it)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_chain(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, leaf first; at least one."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidPem("certificate", "no PEM certificate block found")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise InvalidPem("certificate", "a PEM block does not parse as an X.509 certificate") from exc
    return chain


def load_key(pem: bytes) -> PrivateKey:
    """A private key (EC or RSA, unencrypted PEM)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:
        raise InvalidPem("private key", "encrypted keys are not supported") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidPem("private key", "does not parse as an unencrypted PEM key") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise InvalidPem("private key", "only EC and RSA keys are supported")
    return key


def info_of(cert: x509.Certificate) -> CertInfo:
    return CertInfo(
        names=_dns_names(cert),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        issuer=_issuer_name(cert),
        serial=format(cert.serial_number, "x"),
    )


def inspect_chain(pem: bytes) -> CertInfo:
    """The `CertInfo` of the first certificate of a PEM chain."""
    return info_of(load_chain(pem)[0])


def check_pair(chain_pem: bytes, key_pem: bytes) -> CertInfo:
    """Parse a chain and its key; refuse a key that is not the leaf's."""
    leaf = load_chain(chain_pem)[0]
    refusal = serving_refusal(leaf)  # before the key: a huge one is slow even to parse
    if refusal is not None:
        raise InvalidPem("certificate", refusal)
    if len(key_pem) > MAX_KEY_PEM_BYTES:
        raise InvalidPem("private key", f"larger than {MAX_KEY_PEM_BYTES} bytes")
    key = load_key(key_pem)
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise KeyMismatch()
    return info_of(leaf)


def missing_names(info: CertInfo, domains: Iterable[str]) -> tuple[str, ...]:
    return tuple(d for d in domains if not info.covers(d))


def _public_der(key: object) -> bytes:
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return b"unsupported:" + type(key).__name__.encode()
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(n) for n in san.value.get_values_for_type(x509.DNSName))


def _issuer_name(cert: x509.Certificate) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = cert.issuer.get_attributes_for_oid(oid)
        if values:
            value = values[0].value
            return value if isinstance(value, str) else value.decode(errors="replace")
    return cert.issuer.rfc4514_string()
