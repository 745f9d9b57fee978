"""TLS termination: certificates chosen by SNI, hot replacement, refusals, redirects, HSTS."""

from __future__ import annotations

import datetime
import json
import ssl
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.certs.errors import InvalidPem
from agent.certs.keys import check_pair
from agent.proxy import CertificateRejected, RouteOptions, Upstream
from agent.proxy.certs import CertificateStore
from tests.proxy.backend import running_backend
from tests.proxy.conftest import (
    CertificateAuthority,
    Client,
    get,
    make_authority,
    request,
    running_proxy,
)


def served_serial(client: Client) -> int:
    ssl_object = client.writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_store_refuses_bad_pairs_and_stores_nothing(authority: CertificateAuthority) -> None:
    store = CertificateStore()
    chain, key = authority.issue("app.test")
    _, other_key = authority.issue("app.test")
    with pytest.raises(CertificateRejected, match="does not match"):
        store.put("app.test", chain, other_key)
    with pytest.raises(CertificateRejected, match="does not name"):
        store.put("other.test", chain, key)
    with pytest.raises(CertificateRejected, match="not PEM"):
        store.put("app.test", b"garbage", key)
    with pytest.raises(CertificateRejected, match="private key"):
        store.put("app.test", chain, b"garbage")
    expired_chain, expired_key = authority.issue("app.test", days=-1)
    with pytest.raises(CertificateRejected, match="expired"):
        store.put("app.test", expired_chain, expired_key)
    assert store.names() == frozenset()
    store.put("app.test", chain, key)
    wild_chain, wild_key = authority.issue("*.wild.test")
    store.put("*.wild.test", wild_chain, wild_key)
    assert store.names() == {"app.test", "*.wild.test"}
    assert store.covers("a.wild.test") and not store.covers("wild.test")
    store.remove("app.test")
    assert store.names() == {"*.wild.test"}


async def test_https_by_sni_and_refusal_of_unknown_names(authority: CertificateAuthority) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test", "other.test"], [Upstream("127.0.0.1", a.port)])
        chain, key = authority.issue("app.test")
        proxy.certificates.put("app.test", chain, key)
        port = proxy.https_port
        assert port is not None
        tls = authority.client_context()
        response, _ = await request(port, get("/headers"), tls=tls, server_hostname="app.test")
        headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        # A name without a certificate: an alert, never app.test's certificate.
        for name in ("other.test", "unknown.test"):
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                await Client.connect(port, tls=tls, server_hostname=name)
        no_check = ssl.create_default_context()
        no_check.check_hostname = False
        no_check.verify_mode = ssl.CERT_NONE
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):  # no SNI at all
            await Client.connect(port, tls=no_check, server_hostname=None)


async def test_certificate_replaced_while_running_without_dropping_connections(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        first_chain, first_key = authority.issue("app.test")
        proxy.certificates.put("app.test", first_chain, first_key)
        tls = authority.client_context()
        assert proxy.https_port is not None
        old = await Client.connect(proxy.https_port, tls=tls, server_hostname="app.test")
        await old.send(get("/hello"))
        assert (await old.response()).status == 200
        first_serial = served_serial(old)
        # A new CA's certificate: only new handshakes see it.
        second = make_authority("Second CA")
        chain, key = second.issue("app.test")
        proxy.certificates.put("app.test", chain, key)
        new = await Client.connect(
            proxy.https_port, tls=second.client_context(), server_hostname="app.test"
        )
        await new.send(get("/hello"))
        assert (await new.response()).status == 200
        assert served_serial(new) != first_serial
        await old.send(get("/hello"))  # the old connection goes on
        assert (await old.response()).body == b"hello from a"
        await old.close()
        await new.close()


async def test_http_redirects_to_https_for_hosts_with_a_certificate(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        upstream = [Upstream("127.0.0.1", a.port)]
        proxy.set_route("app", ["app.test"], upstream)
        proxy.set_route("plain", ["plain.test"], upstream)
        proxy.set_route("optout", ["optout.test"], upstream, RouteOptions(https_redirect=False))
        for name in ("app.test", "optout.test"):
            proxy.certificates.put(name, *authority.issue(name))
        port = proxy.http_port
        response, closed = await request(port, get("/path?q=1", "app.test"))
        assert response.status == 301 and not closed
        assert response.header("location") == f"https://app.test:{proxy.https_port}/path?q=1"
        response, _ = await request(
            port, b"POST /form HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n"
        )
        assert response.status == 308
        response, _ = await request(port, get("/hello", "plain.test"))
        assert response.body == b"hello from a"  # no certificate: served over HTTP
        response, _ = await request(port, get("/hello", "optout.test"))
        assert response.body == b"hello from a"


async def test_hsts_on_https_responses_when_asked(authority: CertificateAuthority) -> None:
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route(
            "app", ["app.test"], [Upstream("127.0.0.1", a.port)], RouteOptions(hsts=True)
        )
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        tls = authority.client_context()
        assert proxy.https_port is not None
        client = await Client.connect(proxy.https_port, tls=tls, server_hostname="app.test")
        await client.send(get("/hello"))
        assert (await client.response()).header("strict-transport-security") == "max-age=31536000"
        await client.send(get("/hsts"))
        response = await client.response()
        assert [k for k, _ in response.headers if k.lower() == b"strict-transport-security"] == [
            b"Strict-Transport-Security"
        ]
        assert response.header("strict-transport-security") == "max-age=60"
        await client.close()


async def test_uploads_on_two_tls_connections_at_once(authority: CertificateAuthority) -> None:
    # Uploads bigger than the read buffer TLS connections share (decrypted reads land
    # there and are copied out one by one), on two connections whose reads interleave.
    async with running_backend("a") as a, running_proxy() as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        tls = authority.client_context()
        assert proxy.https_port is not None
        clients = [
            await Client.connect(proxy.https_port, tls=tls, server_hostname="app.test")
            for _ in range(2)
        ]
        bodies = [bytes([n]) * (300 * 1024 + n) for n in range(2)]
        for client, body in zip(clients, bodies, strict=True):
            client.writer.write(
                b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
            )
        for client, body in zip(clients, bodies, strict=True):
            response = await client.response()
            assert response.status == 200 and response.body == body
            await client.send(get("/hello"))
            assert (await client.response()).body == b"hello from a"
            await client.close()


async def test_a_host_of_another_app_than_the_sni_is_misdirected(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_backend("b") as b, running_proxy() as proxy:
        proxy.set_route("app", ["app.test", "alias.test"], [Upstream("127.0.0.1", a.port)])
        proxy.set_route("other", ["other.test"], [Upstream("127.0.0.1", b.port)])
        proxy.certificates.put("app.test", *authority.issue("app.test"))
        proxy.certificates.put("other.test", *authority.issue("other.test"))
        assert proxy.https_port is not None
        tls = authority.client_context()
        client = await Client.connect(proxy.https_port, tls=tls, server_hostname="app.test")
        await client.send(get("/hello", "other.test"))
        response = await client.response()
        assert response.status == 421 and b"another site" in response.body
        await client.send(get("/hello", "alias.test"))  # the same app under another name
        assert (await client.response()).body == b"hello from a"
        await client.send(get("/hello", "app.test:443"))
        assert (await client.response()).body == b"hello from a"
        await client.close()
        assert b.requests == 0
        response, _ = await request(
            proxy.https_port, get("/hello", "other.test"), tls=tls, server_hostname="other.test"
        )
        assert response.body == b"hello from b"


def _pair(
    authority: CertificateAuthority, key: CertificateIssuerPrivateKeyTypes, usage: list[Any]
) -> tuple[bytes, bytes]:
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.test")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("app.test")]), False)
        .add_extension(x509.ExtendedKeyUsage(usage), False)
        .sign(authority.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM) + authority.pem, key_pem


def test_pairs_that_would_stall_or_fail_handshakes_are_refused_before_anything_changes(
    authority: CertificateAuthority,
) -> None:
    store = CertificateStore()
    big = rsa.generate_private_key(public_exponent=65537, key_size=4160)
    client_only = _pair(authority, ec.generate_private_key(ec.SECP256R1()),
                        [ExtendedKeyUsageOID.CLIENT_AUTH])  # fmt: skip
    huge_rsa = _pair(authority, big, [ExtendedKeyUsageOID.SERVER_AUTH])
    cases = [
        (client_only, "not a server certificate"),
        (huge_rsa, "4160 bits; at most 4096"),
        ((huge_rsa[0], b"A" * 1_000_000), "4160 bits"),  # refused before the key is read
    ]
    for (chain, key), says in cases:
        started = time.monotonic()
        with pytest.raises(CertificateRejected, match=says):
            store.put("app.test", chain, key)
        with pytest.raises(InvalidPem, match=says):  # what certs:add checks before saving
            check_pair(chain, key)
        assert time.monotonic() - started < 0.5
    assert store.names() == frozenset()
    # A key too large to be one the proxy serves is refused before it is parsed.
    small_chain, _ = authority.issue("app.test")
    with pytest.raises(CertificateRejected, match="larger than"):
        store.put("app.test", small_chain, b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 100_000)
    # An RSA server certificate of a usual size is served.
    fine = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    store.put("app.test", *_pair(authority, fine, [ExtendedKeyUsageOID.SERVER_AUTH]))
    assert store.names() == frozenset({"app.test"})
