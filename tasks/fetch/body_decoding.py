"""Content-Encoding decoding bounded by output: memory follows the body cap, never the compression ratio.

httpx decodes a whole network chunk through every layer before the caller can count it, so a few
kilobytes of ``Content-Encoding: gzip, gzip`` expand to gigabytes first. Here the raw bytes are
decoded layer by layer with ``zlib``'s ``max_length``: no layer ever hands on more than
``STEP_BYTES`` at once, and decoding stops as soon as the output (or the raw input) passes the cap.

Accepted codings are the ones advertised in ``ACCEPT_ENCODING``: gzip (also multi-member) and
deflate (zlib-wrapped or raw, as browsers accept it). br and zstd are not advertised: their
decoders are not installed. An unknown coding is passed through untouched, as httpx does, and the
parser then judges the bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from feedlake.tasks.errors import FetchTerminalError

ACCEPT_ENCODING = "gzip, deflate"
MAX_LAYERS = 3
STEP_BYTES = 64 * 1024
_GZIP = frozenset({"gzip", "x-gzip"})
_GZIP_MAGIC = b"\x1f\x8b"


class _ZlibLayer:
    """One gzip or deflate layer that never returns more than STEP_BYTES per decompress call."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._gzip = coding in _GZIP
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False  # any output yet: a raw-deflate fallback is only tried before that
        self._between = False  # a gzip member ended: the next bytes may start another one
        self._carry = b""  # bytes after a finished member, too few to tell if another follows
        self._done = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        """Yield the decoded bytes of ``data``, in pieces of at most STEP_BYTES."""
        while not self._done:
            if self._between:
                data, self._carry = self._carry + data, b""
                if not self._gzip:
                    self._done = True  # bytes after the end of a deflate stream are ignored
                    return
                if len(data) < len(_GZIP_MAGIC):
                    self._carry = data
                    return
                if not data.startswith(_GZIP_MAGIC):
                    self._done = True  # trailing garbage after the last member, ignored as httpx does
                    return
                self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)  # the next gzip member
                self._between = False
            try:
                out = self._z.decompress(data, STEP_BYTES)
            except zlib.error as exc:
                if self._coding == "deflate" and not self._started:
                    # Many servers send raw deflate under "deflate"; browsers accept both forms.
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise FetchTerminalError(f"body is not valid {self._coding} data ({exc})") from None
            self._started = self._started or bool(out)
            data = self._z.unconsumed_tail
            if self._z.eof:
                self._between = True
                data = self._z.unused_data + data
            if out:
                yield out
            # A full step may leave output pending inside zlib even when no input is left.
            if not data and len(out) < STEP_BYTES and not self._between:
                return


class BoundedDecoder:
    """Decode a streamed body through its Content-Encoding layers, refusing more than ``cap`` bytes."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c in _GZIP or c == "deflate"]
        if len(codings) > MAX_LAYERS:
            raise FetchTerminalError(
                f"refused Content-Encoding with {len(codings)} layers (at most {MAX_LAYERS})"
            )
        # Codings are listed in the order they were applied, so the last one is undone first.
        self._layers = [_ZlibLayer(c) for c in reversed(codings)]
        self._cap = cap
        self._raw = 0
        self._size = 0
        self._chunks: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        """Decode one chunk of the raw body; raise FetchTerminalError once past the cap."""
        self._raw += len(raw)
        if self._raw > self._cap:
            raise self._too_large()  # e.g. endless empty gzip members: no output, unbounded input
        for piece in self._through(raw, 0):
            self._size += len(piece)
            if self._size > self._cap:
                raise self._too_large()
            self._chunks.append(piece)

    def body(self) -> bytes:
        """The whole decoded body so far."""
        return b"".join(self._chunks)

    def _through(self, data: bytes, index: int) -> Iterator[bytes]:
        if index == len(self._layers):
            yield data
            return
        for piece in self._layers[index].decode(data):
            yield from self._through(piece, index + 1)

    def _too_large(self) -> FetchTerminalError:
        return FetchTerminalError(f"body larger than the {self._cap} byte cap (FEEDLAKE_MAX_BODY_BYTES)")
