"""A local HTTP server whose feeds misbehave in every way the poller must survive."""

from __future__ import annotations

import contextlib
import functools
import gzip
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

from tests.conftest import CASES, CORPUS
from tests.support.threaded_http import QuietHandler

GOOD = (CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml").read_bytes()
ISO_8859_1 = (CORPUS / "miniflux-v2" / "no_encoding_ISO-8859-1.xml").read_bytes()
ENTITY_LINE = '<!ENTITY l{n} "{body}">'
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n <!ENTITY l0 "lol">\n'
    + "\n".join(ENTITY_LINE.format(n=n, body=f"&l{n - 1};" * 10) for n in range(1, 10)).encode()
    + b'\n]>\n<rss version="2.0"><channel><title>t</title>'
    + b"<item><title>&l9;</title><guid>g</guid></item></channel></rss>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<rss version="2.0"><channel><title>t</title>'
    b"<item><title>&secret;</title><guid>g</guid></item></channel></rss>"
)


def gzip_of_zeros(mebibytes: int) -> bytes:
    """A valid gzip stream of ``mebibytes`` MiB of zeros, built without compressing them all."""
    zeros = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    # After a full flush the compressor forgets its history, so every further MiB of zeros
    # compresses to the same bytes: compress one and repeat it.
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)
    return header + first + again * (mebibytes - 1) + deflate.flush() + trailer


@functools.cache
def nested_gzip_bomb() -> bytes:
    """1 GiB of zeros gzipped twice: under 2 KB on the wire (``Content-Encoding: gzip, gzip``)."""
    return gzip.compress(gzip_of_zeros(1024), compresslevel=9)


# 64 MiB of zeros compress to about 64 KiB: the classic decompression bomb.
GZIP_BOMB = gzip_of_zeros(64)


class HostileHandler(QuietHandler):
    protocol_version = "HTTP/1.1"
    hits: dict[str, int] = {}
    # Request headers of the last request to each path (query included), for tests to inspect.
    seen: dict[str, dict[str, str]] = {}

    def do_GET(self) -> None:  # noqa: N802
        route = self.path.split("?")[0]
        HostileHandler.hits[route] = HostileHandler.hits.get(route, 0) + 1
        HostileHandler.seen[self.path] = dict(self.headers.items())
        if route in HEADER_ROUTES:
            self.send_body(*HEADER_ROUTES[route])
        elif route == "/nested-gzip-bomb":
            self.send_body(200, nested_gzip_bomb(), {"Content-Encoding": "gzip, gzip"})
        elif route == "/good":
            self.send_body(200, GOOD)
        elif route == "/trickle":
            self._trickle()
        elif route == "/huge":
            self.send_body(200, b"<rss>" + b"x" * (40 << 20))
        elif route == "/gzip-bomb":
            self.send_body(200, GZIP_BOMB, {"Content-Encoding": "gzip"})
        elif route == "/old-feed":
            self.send_body(301, b"", {"Location": "/good"})
        elif route == "/loop":
            self.send_body(302, b"", {"Location": "/loop"})
        elif route == "/to-metadata":
            self.send_body(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/iam/"})
        elif route == "/rate-limited":
            self.send_body(429, b"", {"Retry-After": "1"}) if HostileHandler.hits[
                route
            ] == 1 else self.send_body(200, GOOD)
        elif route == "/server-error":
            self.send_body(500, b"oops")
        elif route == "/wrong-charset":
            # Declared UTF-8 in the header, but the bytes are ISO-8859-1 with no XML declaration.
            self.send_body(200, ISO_8859_1, {"Content-Type": "application/rss+xml; charset=utf-8"})
        elif route == "/truncated":
            self.send_body(200, GOOD[: len(GOOD) // 2])
        elif route == "/billion-laughs":
            self.send_body(200, BILLION_LAUGHS)
        elif route == "/external-entity":
            self.send_body(200, EXTERNAL_ENTITY)
        else:
            self.send_body(404, b"")

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(GOOD)))
        self.end_headers()
        with contextlib.suppress(OSError):
            for byte in GOOD[:30]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)


# Bad bytes in headers, sent as latin-1 text, which http.server writes byte for byte.
HEADER_ROUTES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "/non-ascii-etag": (
        200,
        GOOD,
        {"ETag": '"caf\xc3\xa9"', "Last-Modified": "Sat, 16 Jan 2016 14:00:00 GMT"},
    ),
    "/superscript-retry-after": (503, b"", {"Retry-After": "\xb2"}),
    "/to-bad-port": (302, b"", {"Location": "http://localhost:99999/"}),
    "/to-bad-idna": (302, b"", {"Location": "http://\xf0\x9f\x92\xa9.example/feed"}),
    "/to-bad-ipv6": (302, b"", {"Location": "http://[::1/feed"}),
    "/many-encodings": (200, gzip.compress(GOOD), {"Content-Encoding": ", ".join(["gzip"] * 8)}),
}

ROUTES = (
    "good",
    "trickle",
    "huge",
    "gzip-bomb",
    "loop",
    "to-metadata",
    "rate-limited",
    "server-error",
    "wrong-charset",
    "truncated",
    "billion-laughs",
    "external-entity",
)


@contextlib.contextmanager
def hostile_server() -> Iterator[str]:
    """Serve the hostile routes on loopback; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
