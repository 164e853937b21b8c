"""Feed discovery: from a site's page (or a feed URL) to a feed URL that really parses as a feed.

Order, as feed readers do it: the URL itself if it is a feed; else the page's
``<link rel="alternate" type="application/rss+xml|atom+xml|feed+json|rdf+xml">`` in document
order, resolved against ``<base href>`` and the page's final URL; else the common paths
(``/feed``, ``/rss``, ...) on the page's host. Each candidate is fetched by the fetch stage (same
client, User-Agent, timeouts, body cap and SSRF guard as a poll) and accepted only if the parse
stage reads it. The link scan uses libxml2's recovering HTML parser (lxml): the page is untrusted,
and the standard library's tokenizer is quadratic on some broken markup and raises on other.
Every candidate is checked with ``sources.catalog.url_problem`` first; one that is malformed (an
unclosed ``[`` IPv6 host, a bad port, ...) is skipped, never fetched and never an exception.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
from lxml import etree

from feedlake.tasks.errors import ParseError
from feedlake.tasks.fetch.client import build_client, fetch_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source, url_problem
from feedlake.tasks.values import FetchResult, ParsedFeed

log = logging.getLogger(__name__)

FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml"}
)
COMMON_FEED_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml", "/feed.json")
# The id fetch and parse put in their logs and errors while a candidate is only being looked at.
PROBE_ID = "discovery"
MAX_LINK_CANDIDATES = 10
# Feed links sit in a page's <head>; a hostile page must not make the scan read megabytes of links.
MAX_LINK_TAGS = 1000


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
    base_href, hrefs = _scan_links(html.encode("utf-8") if isinstance(html, str) else html)
    base = (_joined(page_url, base_href) if base_href else None) or page_url
    found: list[str] = []
    for href in hrefs:
        url = _usable(_joined(base, href), page_url)
        if url is not None and url not in found:
            found.append(url)
            if len(found) == MAX_LINK_CANDIDATES:
                break
    return found


def common_feed_urls(page_url: str) -> list[str]:
    """The common feed paths on the page's host (``https://host/feed``, ``/rss``, ...)."""
    found = (_usable(_joined(page_url, path), page_url) for path in COMMON_FEED_PATHS)
    return [url for url in found if url is not None]


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
    # The feed's own <link> is whatever its author wrote: keep it only if it is a usable URL.
    link = parsed.link if parsed.link and url_problem(parsed.link) is None else None
    return DiscoveredFeed(url, title, link or site_url, parsed.format, how)


def _scan_links(data: bytes) -> tuple[str | None, list[str]]:
    # UTF-8 unless the page says otherwise in a <meta charset>; bad bytes become U+FFFD.
    parser = etree.HTMLParser(
        encoding="utf-8", recover=True, no_network=True, remove_comments=True, remove_pis=True
    )
    try:
        root = etree.fromstring(data, parser) if data.strip() else None
    except (etree.LxmlError, ValueError) as exc:
        log.info("discovery: page not read as HTML: %s", exc)
        return None, []
    if root is None:
        return None, []
    base: str | None = None
    hrefs: list[str] = []
    for number, element in enumerate(root.iter("base", "link")):
        if number == MAX_LINK_TAGS:
            break
        values = {str(name).lower(): (value or "").strip() for name, value in element.attrib.items()}
        href = values.get("href")
        if not href:
            continue
        if element.tag == "base":
            base = base or href
            continue
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES:
            hrefs.append(href)
    return base, hrefs


def _joined(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href)
    except ValueError:
        # urljoin splits both: "http://[bad/" (an unclosed IPv6 host) raises.
        return None


def _usable(url: str | None, page_url: str) -> str | None:
    if url is None:
        log.info("discovery: skipped a malformed link on %s", page_url)
        return None
    problem = url_problem(url)
    if problem is not None:
        log.info("discovery: skipped %r on %s: %s", url[:200], page_url, problem)
        return None
    return url
