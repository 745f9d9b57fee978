"""Finding the end of a chunked body across reads (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.proxy.chunked import ChunkedError, ChunkedScanner


def encode(pieces: list[bytes], trailer: bytes = b"") -> bytes:
    return (
        b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n" + trailer + b"\r\n"
    )


@given(
    pieces=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30),
    after=st.binary(max_size=20),
)
def test_end_found_at_any_split_and_data_recovered(
    pieces: list[bytes], cuts: list[int], after: bytes
) -> None:
    body = encode(pieces, b"X-T: 1\r\n")
    stream = body + after
    scanner = ChunkedScanner()
    data_out: list[memoryview] = []
    consumed = 0
    end = -1
    position = 0
    for cut in [*cuts, len(stream)]:
        piece = stream[position : position + cut]
        if not piece:
            break
        end = scanner.feed(piece, data_out)
        if end >= 0:
            consumed += end
            break
        consumed += len(piece)
        position += cut
    assert end >= 0 and consumed == len(body)
    assert b"".join(bytes(p) for p in data_out) == b"".join(pieces)


@pytest.mark.parametrize(
    "data",
    [b"zz\r\n", b"-1\r\n", b"5\r\nabcdefg\r\n", b"3\nabc\n", b"1" * 20 + b"\r\n", b"a" * 5000],
)
def test_broken_framing_raises(data: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedScanner().feed(data)


def test_extensions_are_allowed() -> None:
    assert ChunkedScanner().feed(b"3;name=value\r\nabc\r\n0\r\n\r\n") == 24
