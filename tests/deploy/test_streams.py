"""The engine's multiplexed stream decoded: every byte, in order, whatever the split."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from agent.deploy.streams import STDERR, STDOUT, FrameDecoder


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_frames_of_one_stream_are_merged_and_streams_kept_apart() -> None:
    decoder = FrameDecoder()
    raw = frame(STDOUT, b"a\n") + frame(STDOUT, b"b\n") + frame(STDERR, b"oops\n") + frame(
        STDOUT, b"c")
    assert decoder.feed(raw) == [(STDOUT, b"a\nb\n"), (STDERR, b"oops\n"), (STDOUT, b"c")]


def test_a_piece_is_never_larger_than_the_limit() -> None:
    decoder = FrameDecoder(max_piece=10)
    pieces = decoder.feed(frame(STDOUT, b"x" * 8) * 3)
    assert [len(data) for _, data in pieces] == [8, 8, 8]


@given(st.lists(st.tuples(st.sampled_from([STDOUT, STDERR]), st.binary(max_size=300)),
                max_size=20),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_any_split_of_the_stream_gives_back_every_byte(frames, seed) -> None:
    raw = b"".join(frame(stream, data) for stream, data in frames)
    rng = random.Random(seed)
    decoder = FrameDecoder(max_piece=rng.randint(1, 1000))
    got = {STDOUT: bytearray(), STDERR: bytearray()}
    position = 0
    while position < len(raw):
        step = rng.randint(1, 50)
        for stream, data in decoder.feed(raw[position:position + step]):
            got[stream] += data
        position += step
    for stream in (STDOUT, STDERR):
        assert bytes(got[stream]) == b"".join(d for s, d in frames if s == stream)
    assert decoder.pending == 0
