"""Upstream response heads: validation, framing, hop-by-hop removal (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.proxy.response_head import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BadResponse,
    HeadMemo,
    ResponseHead,
    client_response_head,
    parse_response_head,
)


def parse(raw: bytes, head: bool = False, dechunk: bool = False):  # type: ignore[no-untyped-def]
    return parse_response_head(raw, head_request=head, dechunk=dechunk)


def test_content_length_response_keeps_end_to_end_headers_only() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Length: 12\r\nX-App: 1\r\n\r\n"
    )
    head = parse(raw)
    assert (head.status, head.framing, head.length, head.keep_alive) == (200, LENGTH, 12, True)
    assert client_response_head(head, b"") == (
        b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 12\r\nX-App: 1\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "head", "framing", "keep"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", False, CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\n\r\n", False, UNTIL_CLOSE, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", False, LENGTH, False),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
            False,
            LENGTH,
            True,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            False,
            LENGTH,
            False,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", True, NO_BODY, True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False, NO_BODY, True),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False, NO_BODY, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", False, UNTIL_CLOSE, False),
    ],
)
def test_framing(raw: bytes, head: bool, framing: int, keep: bool) -> None:
    parsed = parse(raw, head)
    assert (parsed.framing, parsed.keep_alive) == (framing, keep)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n obs-fold\r\n\r\n",
    ],
)
def test_malformed_heads_are_refused(raw: bytes) -> None:
    with pytest.raises(BadResponse):
        parse(raw)


def test_http_1_0_status_line_is_normalised_and_named_hop_headers_cut() -> None:
    head = parse(b"HTTP/1.0 200 Fine\r\nConnection: X-Secret\r\nX-Secret: 1\r\nA: b\r\n\r\n")
    assert client_response_head(head, b"Connection: close\r\n") == (
        b"HTTP/1.1 200 Fine\r\nA: b\r\nConnection: close\r\n\r\n"
    )


def test_upgrade_kept_only_on_101_and_dechunk_drops_transfer_encoding() -> None:
    head = parse(b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
    assert head.status == 101 and head.lines == b"Upgrade: websocket\r\n"
    head = parse(b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n")
    assert head.lines == b"Content-Length: 0\r\n"
    head = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", dechunk=True)
    assert head.framing == CHUNKED and head.lines == b""
    assert parse(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").interim
    assert parse(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\n\r\n").has_hsts


HEAD_PARTS = st.sampled_from(
    [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 204 x\r\n", b"HTTP/1.1 101 S\r\n", b"HTTP/1.1 103 E\r\n",
     b"Content-Length: 5\r\n", b"Content-Length: x\r\n", b"Transfer-Encoding: chunked\r\n",
     b"Connection: close, X-A\r\n", b"Connection: keep-alive\r\n", b"X-A: 1\r\n", b"Upgrade: ws\r\n",
     b"Keep-Alive: 5\r\n", b"\r\n", b" \r\n", b":\r\n", b"\x00", b"\r", b"\n"]
)  # fmt: skip


@given(st.lists(HEAD_PARTS, max_size=8), st.binary(max_size=20), st.booleans(), st.booleans())
def test_any_head_parses_or_is_refused_cleanly(
    parts: list[bytes], noise: bytes, head: bool, dechunk: bool
) -> None:
    raw = b"".join(parts) + noise + b"\r\n\r\n"
    try:
        parsed = parse(raw, head, dechunk)
    except BadResponse:
        return
    rendered = client_response_head(parsed, b"")
    assert rendered.startswith(b"HTTP/1.1 ") and rendered.endswith(b"\r\n\r\n")
    assert b"\r\n\r\n" not in rendered[:-4]
    for hop in (b"\r\nconnection:", b"\r\nkeep-alive:"):
        assert hop not in rendered.lower()


# The response head grammar as one regex (the parser checks it line by line): status
# line, token:value lines, blank line; reason and values HTAB, SP, visible ASCII,
# obs-text.
GRAMMAR = re.compile(
    rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?\r\n"
    rb"((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
ODD_BYTES = st.sampled_from([b"\r", b"\n", b"\r\n", b"\x00", b"\x7f", b"\x80", b"\t", b" ", b":"])


@given(
    st.sampled_from(
        [b"HTTP/1.1 200", b"HTTP/1.0 404 Not Found", b"HTTP/1.1 099", b"HTTP/1.1 200 "]
    ),
    st.lists(st.one_of(HEAD_PARTS, ODD_BYTES, st.binary(max_size=6)), max_size=10),
)
# A head both malformed (a blank line inside) and badly framed (the length line before
# it): either refusal is right, the parser stops at the first line it cannot take.
@example(status=b"HTTP/1.0 404 Not Found", parts=[b"\r\nContent-Length: x\r\n"])
def test_heads_are_well_formed_exactly_when_the_grammar_says_so(
    status: bytes, parts: list[bytes]
) -> None:
    raw = status + b"".join(parts) + b"\r\n\r\n"
    try:
        parse(raw)
        outcome = "parsed"
    except BadResponse as exc:
        outcome = "malformed" if str(exc) == "malformed response head" else "refused framing"
    if GRAMMAR.fullmatch(raw) is not None:
        assert outcome != "malformed", raw
    else:
        assert outcome != "parsed", raw


@given(st.lists(st.lists(HEAD_PARTS, max_size=6), min_size=1, max_size=6), st.booleans())
def test_a_shared_memo_changes_no_answer(heads: list[list[bytes]], dechunk: bool) -> None:
    memo = HeadMemo()
    for parts in heads * 2:  # every head twice: the second time from memory
        raw = b"HTTP/1.1 200 OK\r\n" + b"".join(parts) + b"\r\n"
        try:
            fresh = parse(raw, dechunk=dechunk)
        except BadResponse as exc:
            with pytest.raises(BadResponse, match=str(exc)):
                parse_response_head(raw, head_request=False, dechunk=dechunk, memo=memo)
            continue
        remembered = parse_response_head(raw, head_request=False, dechunk=dechunk, memo=memo)
        assert [getattr(remembered, f) for f in ResponseHead.__slots__] == [
            getattr(fresh, f) for f in ResponseHead.__slots__
        ]
