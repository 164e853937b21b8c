"""A local HTTP server whose feeds misbehave in every way the poller must survive."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import CASES, CORPUS

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
# 64 MiB of zeros compress to about 64 KiB: the classic decompression bomb.
GZIP_BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802
        route = self.path.split("?")[0]
        HostileHandler.hits[route] = HostileHandler.hits.get(route, 0) + 1
        if route == "/good":
            self._send(200, GOOD)
        elif route == "/trickle":
            self._trickle()
        elif route == "/huge":
            self._send(200, b"<rss>" + b"x" * (40 << 20))
        elif route == "/gzip-bomb":
            self._send(200, GZIP_BOMB, {"Content-Encoding": "gzip"})
        elif route == "/old-feed":
            self._send(301, b"", {"Location": "/good"})
        elif route == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif route == "/to-metadata":
            self._send(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/iam/"})
        elif route == "/rate-limited":
            self._send(429, b"", {"Retry-After": "1"}) if HostileHandler.hits[route] == 1 else self._send(
                200, GOOD
            )
        elif route == "/server-error":
            self._send(500, b"oops")
        elif route == "/wrong-charset":
            # Declared UTF-8 in the header, but the bytes are ISO-8859-1 with no XML declaration.
            self._send(200, ISO_8859_1, {"Content-Type": "application/rss+xml; charset=utf-8"})
        elif route == "/truncated":
            self._send(200, GOOD[: len(GOOD) // 2])
        elif route == "/billion-laughs":
            self._send(200, BILLION_LAUGHS)
        elif route == "/external-entity":
            self._send(200, EXTERNAL_ENTITY)
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/xml"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(GOOD)))
        self.end_headers()
        with contextlib.suppress(OSError):
            for byte in GOOD[:30]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


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
