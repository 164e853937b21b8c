"""Where a backfill finds history: each strategy yields the feed documents (captures) it finds.

- ``archive``: RFC 5005 archived feeds: the subscription document, then its ``prev-archive`` chain.
- ``paged``: RFC 5005 paged feeds (``next`` links, JSON Feed ``next_url``), else WordPress-style
  paging (``?paged=N`` or ``/page/N/``), stopping at the first missing, empty or repeated page.
- ``wayback``: Wayback Machine captures of the feed URL, listed by the CDX API and fetched raw
  (``<timestamp>id_``) from a configurable base URL.
- ``files``: a folder of captured feed documents, or WARC files of feed responses.

A capture carries a stable ``key`` (what a checkpoint remembers) and, for chains, the ``cursor``
to resume from. Documents are not parsed here beyond reading their navigation links.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from feedlake.tasks.errors import ConfigError, FeedlakeError, FetchTerminalError
from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.parse.feed_links import ENTRY_START, feed_links
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult

log = logging.getLogger(__name__)

STRATEGIES = ("archive", "paged", "wayback", "files")
_ENTRY_ID = re.compile(
    rb"<(?:guid|id|link)\b[^>]*>\s*(?:<!\[CDATA\[)?\s*([^<\s][^<]*?)\s*(?:\]\]>)?\s*</", re.I
)

Fetch = Callable[[str], FetchResult]


@dataclass(frozen=True)
class Capture:
    """One historical feed document and where and when it was captured."""

    key: str
    url: str
    body: bytes
    captured_at: datetime
    capture_source: str
    headers: dict[str, str] = field(default_factory=dict)
    cursor: str | None = None


def http_fetcher(settings: FeedlakeSettings, source: Source) -> Fetch:
    """Fetch one URL at a time with the poll's client rules (SSRF guard, caps, retries), politely."""
    last = [0.0]

    def fetch(url: str) -> FetchResult:
        # One host, one document after another: keep the poll's minimum gap between requests.
        wait = last[0] + settings.per_host_min_gap_seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            page = Source(
                id=source.id, url=url, name=source.name, publisher=source.publisher, kind=source.kind
            )
            return fetch_feeds_blocking([page], {}, settings)[0]
        finally:
            last[0] = time.monotonic()

    return fetch


def choose_strategy(fetch: Fetch, feed_url: str, path: Path | None) -> tuple[str, str]:
    """The ``auto`` choice, with the reason: files if given, else archive, paged, WordPress, Wayback."""
    if path is not None:
        return "files", f"captured files under {path}"
    current = fetch(feed_url)
    links = feed_links(current.body or b"", feed_url) if current.error is None else {}
    if "prev-archive" in links:
        return "archive", "the feed links its archive (RFC 5005 prev-archive)"
    if "next" in links:
        return "paged", "the feed is paged (next links)"
    found = _wordpress_page_two(fetch, feed_url, entry_fingerprint(current.body or b""))
    if found is not None:
        return "paged", f"the site pages its feed WordPress-style ({found[1].url})"
    return "wayback", "the feed shows no history of its own: Wayback Machine captures"


def entry_fingerprint(body: bytes) -> frozenset[bytes]:
    """The ids, guids and links of a document's entries: equal sets mean a repeated page."""
    first_entry = ENTRY_START.search(body)
    if first_entry is None:
        return frozenset()
    return frozenset(m.group(1) for m in _ENTRY_ID.finditer(body, first_entry.start()))


def archive_captures(
    fetch: Fetch, start_url: str, cursor: str | None = None, max_pages: int = 10_000
) -> Iterator[Capture]:
    """The subscription document, then every ``prev-archive`` document, newest first."""
    yield from _chain(fetch, cursor or start_url, ("prev-archive",), max_pages)


def paged_captures(
    fetch: Fetch, start_url: str, cursor: str | None = None, max_pages: int = 10_000
) -> Iterator[Capture]:
    """Follow ``next`` links; without any, page WordPress-style until a page is missing, empty or repeated."""
    if cursor is not None and cursor.startswith("wordpress:"):
        style, number = cursor.removeprefix("wordpress:").rsplit(":", 1)
        yield from _wordpress(fetch, start_url, style, int(number), frozenset(), max_pages)
        return
    url = cursor or start_url
    first = _fetch_capture(fetch, url, "archive")
    links = feed_links(first.body, url)
    if "next" in links or cursor is not None:
        yield from _chain(fetch, url, ("next",), max_pages, first=first)
        return
    # No cursor yet: the paging style is only known after the probe below.
    yield first
    seen = entry_fingerprint(first.body)
    found = _wordpress_page_two(fetch, start_url, seen)
    if found is None:
        log.info("%s has no next links and no WordPress pages: only its current document", start_url)
        return
    style, page = found
    log.info("paging %s WordPress-style (%s)", start_url, style)
    yield from _wordpress(fetch, start_url, style, 2, seen, max_pages, first=page)


def _wordpress_page_two(fetch: Fetch, feed_url: str, seen: frozenset[bytes]) -> tuple[str, Capture] | None:
    """The WordPress paging style (``query``, then ``path``) whose page 2 holds entries not seen yet."""
    for style in ("query", "path"):
        try:
            page = _fetch_capture(fetch, _wordpress_url(feed_url, style, 2), "archive")
        except FeedlakeError:
            continue
        fingerprint = entry_fingerprint(page.body)
        if fingerprint and not fingerprint <= seen:
            return style, page
    return None


def wayback_captures(
    fetch: Fetch, base_url: str, feed_url: str, since: date | None = None, until: date | None = None
) -> tuple[int, Iterator[Capture]]:
    """How many distinct captures the CDX API lists for ``feed_url``, and an iterator over them."""
    query = {"url": feed_url, "output": "json", "filter": "statuscode:200", "collapse": "digest"}
    if since:
        query["from"] = since.strftime("%Y%m%d")
    if until:
        query["to"] = until.strftime("%Y%m%d") + "235959"
    listing = fetch(f"{base_url.rstrip('/')}/cdx/search/cdx?{urlencode(query)}")
    if listing.error is not None:
        raise listing.error
    try:
        rows = json.loads(listing.body or b"[]")
    except json.JSONDecodeError as exc:
        raise FetchTerminalError(
            f"the CDX API answered something that is not JSON: {exc}", url=listing.url
        ) from exc
    # The first row names the fields: urlkey, timestamp, original, mimetype, statuscode, digest, length.
    header, records = (rows[0], rows[1:]) if rows else ([], [])
    timestamp_at, original_at = header.index("timestamp"), header.index("original")
    snapshots = [(str(r[timestamp_at]), str(r[original_at])) for r in records]

    def captures() -> Iterator[Capture]:
        for timestamp, original in snapshots:
            url = f"{base_url.rstrip('/')}/web/{timestamp}id_/{original}"
            result = fetch(url)
            if result.error is not None:
                log.warning("wayback capture %s of %s: %s", timestamp, original, result.error)
                continue
            captured_at = datetime.strptime(timestamp[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            yield Capture(
                f"wayback:{timestamp}",
                original,
                result.body or b"",
                captured_at,
                "wayback",
                dict(result.headers),
            )

    return len(snapshots), captures()


def file_captures(path: Path, feed_url: str) -> tuple[int, Iterator[Capture]]:
    """Captured documents under ``path`` (a file or a folder): plain feed files and WARC records."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise ConfigError(f"no captured files under {path}")

    def captures() -> Iterator[Capture]:
        for file in files:
            name = file.relative_to(path).as_posix() if file != path else file.name
            if file.name.endswith((".warc", ".warc.gz")):
                yield from _warc_captures(file, name)
                continue
            captured_at = datetime.fromtimestamp(file.stat().st_mtime, UTC)
            yield Capture(f"file:{name}", feed_url, file.read_bytes(), captured_at, "file")

    return len(files), captures()


def _warc_captures(file: Path, name: str) -> Iterator[Capture]:
    from warcio.archiveiterator import ArchiveIterator

    with file.open("rb") as stream:
        records = ArchiveIterator(stream)
        for record in records:
            if record.rec_type != "response" or record.http_headers is None:
                continue
            if record.http_headers.get_statuscode() != "200":
                continue
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            stamp = record.rec_headers.get_header("WARC-Date") or ""
            captured_at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else datetime.now(UTC)
            headers = {k.lower(): v for k, v in record.http_headers.headers}
            body = record.content_stream().read()
            yield Capture(
                f"file:{name}#{records.get_record_offset()}", url, body, captured_at, "file", headers
            )


def _fetch_capture(fetch: Fetch, url: str, capture_source: str) -> Capture:
    result = fetch(url)
    if result.error is not None:
        raise result.error
    headers = {k.lower(): v for k, v in result.headers.items()}
    return Capture(url, url, result.body or b"", result.fetched_at, capture_source, headers)


def _chain(
    fetch: Fetch, url: str, rels: Sequence[str], max_pages: int, first: Capture | None = None
) -> Iterator[Capture]:
    visited: set[str] = set()
    current: str | None = url
    while current is not None and current not in visited and len(visited) < max_pages:
        visited.add(current)
        page = (
            first if first is not None and first.url == current else _fetch_capture(fetch, current, "archive")
        )
        links = feed_links(page.body, current)
        following = next((links[r] for r in rels if r in links), None)
        # The cursor is where a resumed chain starts: the page after this one.
        yield Capture(
            page.key, page.url, page.body, page.captured_at, "archive", page.headers, cursor=following
        )
        current = following


def _wordpress(
    fetch: Fetch,
    start_url: str,
    style: str,
    number: int,
    seen: frozenset[bytes],
    max_pages: int,
    first: Capture | None = None,
) -> Iterator[Capture]:
    known = set(seen)
    while number <= max_pages:
        url = _wordpress_url(start_url, style, number)
        try:
            page = first if first is not None and first.url == url else _fetch_capture(fetch, url, "archive")
        except FeedlakeError as exc:
            log.info("WordPress paging of %s ends at page %d: %s", start_url, number, exc)
            return
        fingerprint = entry_fingerprint(page.body)
        if not fingerprint or fingerprint <= known:
            log.info("WordPress paging of %s ends at page %d (empty or repeated)", start_url, number)
            return
        known |= fingerprint
        cursor = f"wordpress:{style}:{number + 1}"
        yield Capture(page.key, page.url, page.body, page.captured_at, "archive", page.headers, cursor=cursor)
        number += 1


def _wordpress_url(feed_url: str, style: str, number: int) -> str:
    parts = urlsplit(feed_url)
    if style == "query":
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "paged"]
        return urlunsplit(parts._replace(query=urlencode([*query, ("paged", str(number))])))
    # /feed/ -> /feed/page/2/ is not WordPress; /page/2/feed/ is: the page goes before "feed".
    path = parts.path.rstrip("/")
    head, _, tail = path.rpartition("/")
    slash = "" if "." in tail else "/"
    return urlunsplit(parts._replace(path=f"{head}/page/{number}/{tail}{slash}"))
