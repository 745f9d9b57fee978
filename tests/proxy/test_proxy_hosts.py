"""Host header normalisation and route host validation (pure)."""

from __future__ import annotations

import pytest

from agent.proxy.errors import InvalidHost
from agent.proxy.hosts import check_route_host, parse_host_header, wildcard_parent


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"example.com", "example.com"),
        (b"Example.COM:8080", "example.com"),
        (b"example.com.", "example.com"),
        (b"localhost", "localhost"),
        (b"127.0.0.1:80", "127.0.0.1"),
        (b"[::1]:443", "[::1]"),
        (b"a b", None),
        (b"", None),
        (b"user@example.com", None),
        (b"example.com:80:80", None),
        (b"exa\xffmple.com", None),
        (b"a..b", None),
        (b"-", None),
    ],
)
def test_parse_host_header(raw: bytes, name: str | None) -> None:
    assert parse_host_header(raw) == name


def test_route_hosts() -> None:
    assert check_route_host("www.example.com") == "www.example.com"
    assert check_route_host("*.example.com") == "*.example.com"
    for bad in ("Example.com", "*.com.", "a..b", "*", "*.", "exa mple.com", "a.*.com", ""):
        with pytest.raises(InvalidHost):
            check_route_host(bad)
    assert wildcard_parent("a.example.com") == "*.example.com"
    assert wildcard_parent("localhost") == ""
