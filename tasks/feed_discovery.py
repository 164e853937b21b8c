"""Feed discovery: from a site's page (or a feed URL) to a feed URL that really parses as a feed.

Order, as feed readers do it: the URL itself if it is a feed; else the page's
``<link rel="alternate" type="application/rss+xml|atom+xml|feed+json|rdf+xml">`` in document
order, resolved against ``<base href>`` and the page's final URL; else the common paths
(``/feed``, ``/rss``, ...) on the page's host. Each candidate is fetched by the fetch stage (same
client, User-Agent, timeouts, body cap and SSRF guard as a poll) and accepted only if the parse
stage reads it. The link scan uses the standard library's tolerant HTML tokenizer: it needs only
start tags, and it never fails on broken markup.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from tasks.errors import ParseError
from tasks.fetch import FetchResult, build_client, fetch_feed
from tasks.parse import ParsedFeed, parse_feed
from tasks.settings import FeedlakeSettings
from tasks.sources import Source

log = logging.getLogger(__name__)

FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml"}
)
COMMON_FEED_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml", "/feed.json")
# The id fetch and parse put in their logs and errors while a candidate is only being looked at.
PROBE_ID = "discovery"
MAX_LINK_CANDIDATES = 10


@dataclass(frozen=True)
class DiscoveredFeed:
    """A feed found from a URL: where it is, its title and site, and how it was found."""

    url: str
    title: str | None
    site_url: str | None
    format: str
    found_by: str  # "the URL itself", "<link rel=alternate>", or "common path"


def feed_links(html: bytes | str, page_url: str) -> list[str]:
    """Absolute URLs of the feeds a page links with ``<link rel="alternate" type=...>``, in order."""
    text = html if isinstance(html, str) else html.decode("utf-8", errors="replace")
    scanner = _LinkScanner()
    scanner.feed(text)
    scanner.close()
    base = urljoin(page_url, scanner.base) if scanner.base else page_url
    found: list[str] = []
    for href in scanner.hrefs:
        url = urljoin(base, href)
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found.append(url)
    return found[:MAX_LINK_CANDIDATES]


def common_feed_urls(page_url: str) -> list[str]:
    """The common feed paths on the page's host (``https://host/feed``, ``/rss``, ...)."""
    return [urljoin(page_url, path) for path in COMMON_FEED_PATHS]


async def discover_feed(
    url: str, settings: FeedlakeSettings, client: httpx.AsyncClient | None = None
) -> DiscoveredFeed:
    """Find the feed behind ``url``; raise the fetch error, or ParseError if no feed is found."""
    http = client if client is not None else build_client(settings)
    try:
        page = await _fetch(http, url, settings)
        if page.error is not None:
            raise page.error
        parsed = _parsed(page)
        if parsed is not None:
            return _found(page, parsed, "the URL itself")
        page_url = page.final_url or url
        tried: list[str] = []
        for how, candidates in (
            ("<link rel=alternate>", feed_links(page.body or b"", page_url)),
            ("common path", common_feed_urls(page_url)),
        ):
            for candidate in candidates:
                if candidate in tried:
                    continue
                tried.append(candidate)
                fetched = await _fetch(http, candidate, settings)
                parsed = _parsed(fetched) if fetched.error is None else None
                if parsed is not None:
                    return _found(fetched, parsed, how, site_url=page_url)
                log.info("discovery: %s is not a feed (%s)", candidate, fetched.error or "does not parse")
        raise ParseError(
            f"no feed found: the page links none that parses (<link rel=alternate>) and none of "
            f"{', '.join(COMMON_FEED_PATHS)} on its host is a feed; give the feed URL itself",
            url=url,
        )
    finally:
        if client is None:
            await http.aclose()


def discover_feed_blocking(url: str, settings: FeedlakeSettings) -> DiscoveredFeed:
    """Run ``discover_feed`` to completion from synchronous code."""
    return asyncio.run(discover_feed(url, settings))


async def _fetch(client: httpx.AsyncClient, url: str, settings: FeedlakeSettings) -> FetchResult:
    probe = Source(id=PROBE_ID, url=url, name=PROBE_ID, publisher=PROBE_ID, kind="blog")
    return await fetch_feed(client, probe, None, settings)


def _parsed(fetched: FetchResult) -> ParsedFeed | None:
    if fetched.body is None:
        return None
    try:
        return parse_feed(fetched)
    except Exception as exc:  # noqa: BLE001 - whatever the parser makes of it, this is no feed
        log.debug("discovery: %s does not parse: %s", fetched.url, exc)
        return None


def _found(fetched: FetchResult, parsed: ParsedFeed, how: str, site_url: str | None = None) -> DiscoveredFeed:
    # A permanent redirect moves the feed for good: record where it lives now.
    url = fetched.moved_to or fetched.url
    title = " ".join((parsed.title or "").split()) or None
    return DiscoveredFeed(url, title, parsed.link or site_url, parsed.format, how)


class _LinkScanner(HTMLParser):
    """Collects ``<base href>`` and the hrefs of feed ``<link rel=alternate>`` tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "").strip() for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        if tag != "link" or not values.get("href"):
            return
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES:
            self.hrefs.append(values["href"])

    handle_startendtag = handle_starttag
