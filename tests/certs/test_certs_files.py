"""Certificate inspection, key checks, storage layout and the [acme] settings."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from agent.certs.acme_client import parse_retry_after
from agent.certs.errors import InvalidPem, KeyMismatch
from agent.certs.keys import check_pair, generate_key, inspect_chain, key_to_pem, make_csr
from agent.certs.settings import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, AcmeSettings
from agent.certs.storage import AccountRecord, CertStore, KeyPair, directory_key
from agent.config import parse_config
from agent.errors import ConfigError
from tests.certs.fakes import ThrowawayCA

NOW = time.time()


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA()


def test_check_pair_accepts_matching_key_and_reads_the_cert(ca: ThrowawayCA) -> None:
    chain, key = ca.issue_pair(["www.example.com", "*.shop.example.com"], NOW, NOW + 3600)
    info = check_pair(chain, key)
    assert info.names == ("www.example.com", "*.shop.example.com")
    assert info.covers("www.example.com") and info.covers("a.shop.example.com")
    assert not info.covers("shop.example.com") and not info.covers("a.b.shop.example.com")
    assert info.issuer == "berth unit-test CA"
    assert info.not_after - info.not_before == pytest.approx(3600, abs=1)


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa2048"])
def test_other_key_is_refused(ca: ThrowawayCA, key_type: str) -> None:
    chain, _ = ca.issue_pair(["www.example.com"], NOW, NOW + 3600, key_type)
    with pytest.raises(KeyMismatch, match="does not match"):
        check_pair(chain, key_to_pem(generate_key(key_type)))


@pytest.mark.parametrize("pem", [b"", b"hello", (b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                 b"-----END CERTIFICATE-----\n")])
def test_garbage_certificate_is_one_clear_error(ca: ThrowawayCA, pem: bytes) -> None:
    _, key = ca.issue_pair(["www.example.com"], NOW, NOW + 3600)
    with pytest.raises(InvalidPem) as caught:
        check_pair(pem, key)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("invalid certificate")


def test_garbage_key_is_one_clear_error(ca: ThrowawayCA) -> None:
    chain, _ = ca.issue_pair(["www.example.com"], NOW, NOW + 3600)
    with pytest.raises(InvalidPem, match="invalid private key"):
        check_pair(chain, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_csr_names_exactly_the_domain() -> None:
    from cryptography import x509

    csr = x509.load_pem_x509_csr(make_csr("app.example.com", generate_key("ecdsa-p256")))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["app.example.com"]


def test_staging_and_production_never_share_a_directory() -> None:
    assert directory_key(LETS_ENCRYPT) != directory_key(LETS_ENCRYPT_STAGING)
    assert directory_key("https://127.0.0.1:14000/dir") != directory_key(
        "https://localhost:14000/dir")
    assert "/" not in directory_key("https://ca.example/acme/dir?x=1")


def test_files_are_private_and_round_trip(tmp_path: Path, ca: ThrowawayCA) -> None:
    store = CertStore(tmp_path / "certs")
    chain, key = ca.issue_pair(["www.example.com"], NOW, NOW + 3600)
    store.save_acme(LETS_ENCRYPT, "www.example.com", KeyPair(chain, key))
    store.save_account(LETS_ENCRYPT, AccountRecord(b"KEY", "https://ca/acct/1", "a@b.example"))
    assert store.load_acme(LETS_ENCRYPT, "www.example.com") == KeyPair(chain, key)
    assert store.load_acme(LETS_ENCRYPT_STAGING, "www.example.com") is None
    assert store.acme_domains(LETS_ENCRYPT) == ["www.example.com"]
    assert store.load_account(LETS_ENCRYPT) == AccountRecord(b"KEY", "https://ca/acct/1",
                                                              "a@b.example")
    for path in (tmp_path / "certs").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert not [p for p in (tmp_path / "certs").rglob(".*.tmp")]


def test_a_replaced_certificate_is_swapped_whole(tmp_path: Path, ca: ThrowawayCA) -> None:
    store = CertStore(tmp_path)
    first = KeyPair(*ca.issue_pair(["a.example.com"], NOW, NOW + 60))
    second = KeyPair(*ca.issue_pair(["a.example.com"], NOW, NOW + 120))
    store.save_acme(LETS_ENCRYPT, "a.example.com", first)
    store.save_acme(LETS_ENCRYPT, "a.example.com", second)
    loaded = store.load_acme(LETS_ENCRYPT, "a.example.com")
    assert loaded == second
    assert inspect_chain(loaded.chain_pem).not_after == pytest.approx(NOW + 120, abs=1)
    assert os.listdir(next((tmp_path / "acme").iterdir()) / "live") == ["a.example.com.pem"]


def test_acme_table_of_berth_toml() -> None:
    config = parse_config("""
        [acme]
        email = "ops@example.com"
        staging = true
        ca_bundle = "/etc/berth/pebble-ca.pem"
        key_type = "rsa2048"
        scan_interval = 300
        public_addresses = ["203.0.113.7"]
    """)
    acme = config.acme
    assert acme.active_directory == LETS_ENCRYPT_STAGING
    assert acme.dry_run_directory is None  # already on staging
    assert acme.ca_bundle == Path("/etc/berth/pebble-ca.pem")
    assert acme.key_type == "rsa2048" and acme.scan_interval == 300.0
    assert AcmeSettings().dry_run_directory == LETS_ENCRYPT_STAGING


@pytest.mark.parametrize("table, problem", [
    ('key_type = "dsa"', "key_type"),
    ("backoff_min = 0", "backoff_min"),
    ("scan_jitter = 1.5", "scan_jitter"),
    ('directory = "ftp://ca"', "directory"),
    ("emial = 'typo@example.com'", "unknown setting"),
])
def test_bad_acme_settings_are_refused(table: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(f"[acme]\n{table}\n")


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(NOW + 3600))
    assert parse_retry_after(date, NOW) == pytest.approx(3600, abs=2)
