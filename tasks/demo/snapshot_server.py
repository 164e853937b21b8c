"""A local HTTP server for captured feed snapshots, with ETag / Last-Modified like a real site.

The demo and the tests poll bundled snapshots through it, so every run exercises real HTTP:
conditional GET, content types and status codes. It also serves captured article pages at their
original paths (``pages``: path and query -> file), so that a feed's item links reach them when the
fetcher is told to connect to this server for the page's host (``FEEDLAKE_CONNECT_TO``).
"""

from __future__ import annotations

import contextlib
import csv
import email.utils
import hashlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/feed+json",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
}
# One fixed Last-Modified: snapshots never change while served.
LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


class SnapshotHandler(BaseHTTPRequestHandler):
    """Serve files below ``root`` with validators and 304 answers."""

    server_version = "feedlake-snapshots/1"

    def __init__(self, *args: object, root: Path, pages: Mapping[str, Path], **kwargs: object) -> None:
        self.root = root
        self.pages = pages
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:  # noqa: N802 - the stdlib names it so
        """Answer a GET with the file, a 304, or a 404."""
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        path = self.pages.get(self.path) or (self.root / relative).resolve()
        if path not in self.pages.values() and (self.root not in path.parents or not path.is_file()):
            self.send_error(404, "no such snapshot")
            return
        body = path.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix.lower(), "application/xml"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: the poll summary reports what matters."""


@contextmanager
def serve_snapshots(
    root: Path, host: str = "127.0.0.1", port: int = 0, pages: Mapping[str, Path] | None = None
) -> Iterator[str]:
    """Serve ``root`` (and ``pages`` at their paths) on loopback for the block; yield the base URL."""
    handler = partial(SnapshotHandler, root=root.resolve(), pages=dict(pages or {}))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="snapshot-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def bundled_pages(links: Path) -> dict[str, dict[str, Path]]:
    """Host -> (path and query -> page file) of each page a LINKS.tsv (item_link, page_file) lists."""
    hosts: dict[str, dict[str, Path]] = {}
    with links.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            link = urlsplit(row["item_link"])
            target = link.path + (f"?{link.query}" if link.query else "")
            hosts.setdefault(link.netloc, {})[target] = links.parent / row["page_file"]
    return hosts
