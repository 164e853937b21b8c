"""fetch.body_decoding: every accepted Content-Encoding round-trips, and output never outgrows the cap."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from feedlake.tasks.errors import FetchTerminalError
from feedlake.tasks.fetch.body_decoding import STEP_BYTES, BoundedDecoder
from tests.support.hostile_server import gzip_of_zeros

BODY = os.urandom(200_000) + b"<rss>" * 100_000


def raw_deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush()


def decode(coding: str, raw: bytes, cap: int = 10_000_000, chunk: int = 997) -> bytes:
    decoder = BoundedDecoder(coding, cap)
    for start in range(0, len(raw), chunk):
        decoder.feed(raw[start : start + chunk])
    return decoder.body()


@pytest.mark.parametrize(
    ("coding", "raw"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("GZIP, gzip", gzip.compress(gzip.compress(BODY))),
        ("deflate, gzip", gzip.compress(zlib.compress(BODY))),
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),
        ("gzip", gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:])),  # two members
        ("gzip", gzip.compress(BODY) + b"\0\0 trailing padding"),
        ("", BODY),
        ("identity", BODY),
        ("br", BODY),  # not advertised, so not decoded: passed on for the parser to judge
    ],
)
def test_accepted_encodings_round_trip(coding: str, raw: bytes) -> None:
    assert decode(coding, raw) == BODY


def test_nested_bomb_stops_at_the_cap_after_little_work() -> None:
    bomb = gzip.compress(gzip_of_zeros(256))
    decoder = BoundedDecoder("gzip, gzip", cap=1 << 20)
    with pytest.raises(FetchTerminalError, match="1048576 byte cap"):
        decoder.feed(bomb)
    assert len(decoder.body()) <= 1 << 20


def test_no_single_piece_is_larger_than_a_step() -> None:
    decoder = BoundedDecoder("gzip", cap=64 << 20)
    decoder.feed(gzip_of_zeros(8))
    assert len(decoder.body()) == 8 << 20
    assert max(len(piece) for piece in decoder._chunks) <= STEP_BYTES


def test_raw_input_is_capped_even_when_it_decodes_to_nothing() -> None:
    empty_member = gzip.compress(b"")
    decoder = BoundedDecoder("gzip", cap=4096)
    with pytest.raises(FetchTerminalError, match="byte cap"):
        for _ in range(1000):
            decoder.feed(empty_member)


def test_too_many_layers_are_refused() -> None:
    with pytest.raises(FetchTerminalError, match="4 layers"):
        BoundedDecoder("gzip, gzip, deflate, gzip", cap=4096)


def test_split_gzip_header_between_members_is_handled() -> None:
    two = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode("gzip", two, chunk=1) == b"first second"


def test_corrupt_data_is_a_terminal_error() -> None:
    with pytest.raises(FetchTerminalError, match="not valid gzip"):
        decode("gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 100)
