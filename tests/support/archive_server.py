"""A local HTTP server with a feed's history in every form a backfill reads, built from a real feed.

The 300 real items of the Economist Asia feed (tests/cases/corpus) are cut into pages of 50,
newest first, and served as:

- ``/archive/feed.xml`` -> ``/archive/page-N.xml``: RFC 5005 archived feed (prev-archive chain);
- ``/paged/feed.xml`` -> ``/paged/feed.xml?page=N``: RFC 5005 paged feed (next links);
- ``/wp/feed/?paged=N`` and ``/wp-path/page/N/feed/``: WordPress paging, 404 past the end;
- ``/wp-repeat/feed/?paged=N``: WordPress paging that repeats the last page past the end;
- ``/plain/feed.xml``: the current page only, no history;
- ``/wb/cdx/search/cdx`` and ``/wb/web/<timestamp>id_/<url>``: a Wayback Machine (CDX API and raw
  snapshots) holding 8 overlapping captures of the feed, one every 60 days.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.paths import CASES
from tests.support.threaded_http import serve_handler

SOURCE_FEED = CASES / "corpus" / "fastfeedparser" / "960551eca5b5db81.economist-asia.xml"
ORIGINAL_URL = "https://www.economist.com/asia/rss.xml"
PAGE_SIZE = 50
_ITEM = re.compile(r"<item>.*?</item>", re.S)


def split_feed(text: str) -> tuple[str, list[str], str]:
    """The document's head (up to the first item), its items, and its tail."""
    items = _ITEM.findall(text)
    head = text[: text.index(items[0])]
    tail = text[text.index(items[-1]) + len(items[-1]) :]
    return head, items, tail


def document(head: str, items: list[str], tail: str, links: dict[str, str]) -> bytes:
    """A feed document with these items and feed-level atom:link navigation links."""
    extra = "".join(f'\n    <atom:link rel="{rel}" href="{href}"/>' for rel, href in links.items())
    return (head.replace("<channel>", "<channel>" + extra, 1) + "".join(items) + tail).encode()


class ArchiveSite:
    """Every route's body, computed once."""

    def __init__(self) -> None:
        head, items, tail = split_feed(SOURCE_FEED.read_text(encoding="utf-8"))
        self.items = items
        pages = [items[i : i + PAGE_SIZE] for i in range(0, len(items), PAGE_SIZE)]
        self.pages = pages
        self.routes: dict[str, bytes] = {}
        for n, page in enumerate(pages):
            older = {"prev-archive": f"/archive/page-{n + 1}.xml"} if n + 1 < len(pages) else {}
            self.routes["/archive/feed.xml" if n == 0 else f"/archive/page-{n}.xml"] = document(
                head, page, tail, older
            )
            following = {"next": f"/paged/feed.xml?page={n + 2}"} if n + 1 < len(pages) else {}
            self.routes["/paged/feed.xml" if n == 0 else f"/paged/feed.xml?page={n + 1}"] = document(
                head, page, tail, following
            )
            plain = document(head, page, tail, {})
            self.routes["/wp/feed/" if n == 0 else f"/wp/feed/?paged={n + 1}"] = plain
            self.routes["/wp-path/feed/" if n == 0 else f"/wp-path/page/{n + 1}/feed/"] = plain
            self.routes["/wp-repeat/feed/" if n == 0 else f"/wp-repeat/feed/?paged={n + 1}"] = plain
        self.routes["/plain/feed.xml"] = document(head, pages[0], tail, {})
        self.last_repeat = document(head, pages[-1], tail, {})
        # Wayback: 8 captures of a 100-item window sliding back 40 items every 60 days.
        self.snapshots: dict[str, bytes] = {}
        start = datetime(2026, 2, 18, tzinfo=UTC)
        for k in range(8):
            stamp = (start - timedelta(days=60 * k)).strftime("%Y%m%d%H%M%S")
            self.snapshots[stamp] = document(head, items[40 * k : 40 * k + 100], tail, {})

    def answer(self, target: str) -> tuple[int, bytes, str]:
        """Status, body and content type for a request target (path and query)."""
        if target in self.routes:
            return 200, self.routes[target], "application/rss+xml"
        if target.startswith("/wp-repeat/feed/?paged="):
            return 200, self.last_repeat, "application/rss+xml"
        parts = urlsplit(target)
        if parts.path == "/wb/cdx/search/cdx":
            return 200, self._cdx(parse_qs(parts.query)), "application/json"
        match = re.fullmatch(r"/wb/web/(\d{14})id_/(.+)", target)
        if match and match.group(2) == ORIGINAL_URL and match.group(1) in self.snapshots:
            return 200, self.snapshots[match.group(1)], "application/rss+xml"
        return 404, b"not found", "text/plain"

    def _cdx(self, query: dict[str, list[str]]) -> bytes:
        if query.get("url") != [ORIGINAL_URL] or query.get("output") != ["json"]:
            return b"[]"
        low, high = query.get("from", ["0"])[0], query.get("to", ["99999999999999"])[0]
        header = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]
        rows = [
            [
                "com,economist)/asia/rss.xml",
                stamp,
                ORIGINAL_URL,
                "application/rss+xml",
                "200",
                f"D{stamp}",
                "1",
            ]
            for stamp in sorted(self.snapshots)
            if low <= stamp[: len(low)] and stamp[: len(high)] <= high
        ]
        return json.dumps([header, *rows] if rows else []).encode()


@contextmanager
def serve_archive_site() -> Iterator[tuple[str, ArchiveSite]]:
    """Serve an ArchiveSite on loopback; yield its base URL and the site."""
    site = ArchiveSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            status, body, content_type = site.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base:
        yield base, site
