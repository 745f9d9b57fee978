"""The proxy on both address families (`agent.proxy.sockets`): by default one dual-stack
socket per port answers IPv6 and IPv4 clients, over plain HTTP and TLS, and an IPv4
client is known by its plain IPv4 address (forwarded headers, trusted proxies).

The real-socket tests need IPv6 on the loopback interface (`::1`); they are skipped, and
say so, only on a host where IPv6 is absent."""

from __future__ import annotations

import errno
import json
import socket

import pytest

from agent.proxy import Upstream
from agent.proxy.settings import ProxySettings
from agent.proxy.sockets import listen_address, listening_socket, peer_ip
from tests.conftest import ipv6_loopback
from tests.proxy.backend import running_backend
from tests.proxy.conftest import CertificateAuthority, get, request, running_proxy

needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback(), reason="this host has no IPv6 (no ::1 on lo): nothing to test over it")


def test_the_default_is_every_address_of_both_families() -> None:
    assert ProxySettings().listen == "::"


def test_without_ipv6_the_ipv6_any_address_falls_back_to_ipv4() -> None:
    no_ipv6 = OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
    assert listen_address("::", no_ipv6) == "0.0.0.0"
    assert listen_address("::", None) == "::"
    # An address the user chose is never replaced: binding it says what is wrong.
    assert listen_address("127.0.0.1", no_ipv6) == "127.0.0.1"
    assert listen_address("2001:db8::1", no_ipv6) == "2001:db8::1"


def test_ipv4_clients_of_a_dual_stack_socket_are_known_by_their_ipv4_address() -> None:
    assert peer_ip(("::ffff:203.0.113.9", 51000, 0, 0)) == "203.0.113.9"
    assert peer_ip(("2001:db8::9", 51000, 0, 0)) == "2001:db8::9"
    assert peer_ip(("::ffff:0:1", 51000, 0, 0)) == "::ffff:0:1"  # not IPv4-mapped
    assert peer_ip(("198.51.100.4", 51000)) == "198.51.100.4"
    assert peer_ip(None) == "-"


@needs_ipv6
def test_a_socket_on_the_ipv6_any_address_takes_both_families() -> None:
    with listening_socket("::", 0, 16) as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        port = sock.getsockname()[1]
        for host in ("::1", "127.0.0.1"):
            socket.create_connection((host, port), timeout=5).close()


@needs_ipv6
async def test_requests_over_ipv6_and_ipv4_both_reach_the_app(
    authority: CertificateAuthority,
) -> None:
    async with running_backend("a") as a, running_proxy(listen="::") as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        answers = {}
        for host in ("::1", "127.0.0.1"):  # plain HTTP: no certificate yet (no redirect)
            answers[host, "http"], _ = await request(proxy.http_port, get("/headers"), host=host)
        chain, key = authority.issue("app.test")
        proxy.certificates.put("app.test", chain, key)
        assert proxy.https_port is not None
        for host in ("::1", "127.0.0.1"):
            answers[host, "https"], _ = await request(
                proxy.https_port, get("/headers"), host=host, tls=authority.client_context(),
                server_hostname="app.test")
        for (host, scheme), response in answers.items():
            assert response.status == 200, (host, scheme)
            headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
            assert headers["x-forwarded-for"] == host, (host, scheme)
            assert headers["x-forwarded-proto"] == scheme


@needs_ipv6
async def test_an_ipv4_peer_on_a_dual_stack_socket_matches_ipv4_trusted_proxies() -> None:
    async with running_backend("a") as a, \
            running_proxy(listen="::", trusted_proxies=("127.0.0.0/8",)) as proxy:
        proxy.set_route("app", ["app.test"], [Upstream("127.0.0.1", a.port)])
        extra = "X-Forwarded-For: 203.0.113.9\r\n"
        response, _ = await request(proxy.http_port, get("/headers", extra=extra))
        headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        # An IPv6 peer is not in the IPv4 range: its claim is dropped.
        response, _ = await request(proxy.http_port, get("/headers", extra=extra), host="::1")
        headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
        assert headers["x-forwarded-for"] == "::1"
