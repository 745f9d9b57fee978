"""SNI extraction from real ClientHellos (made by the ssl module) and from garbage."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.proxy.client_hello import NotTLS, server_name


def client_hello(name: str | None) -> bytes:
    context = ssl.create_default_context()
    if name is None:
        context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_name_found_in_whole_and_partial_hellos() -> None:
    hello = client_hello("App.Example.COM")
    assert server_name(hello) == "app.example.com"
    for cut in (0, 3, 5, 40, len(hello) - 1):
        assert server_name(hello[:cut]) is False
    assert server_name(client_hello(None)) is None


def test_a_hello_split_over_two_records() -> None:
    hello = client_hello("split.test")
    payload = hello[5:]
    first, second = payload[:30], payload[30:]
    records = (
        b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first
        + b"\x16\x03\x01" + len(second).to_bytes(2, "big") + second
    )  # fmt: skip
    assert server_name(records) == "split.test"


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x00\x00", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"],
)
def test_not_tls(data: bytes) -> None:
    with pytest.raises(NotTLS):
        server_name(data)


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        server_name(b"\x16\x03\x01" + data)
    except NotTLS:
        pass
