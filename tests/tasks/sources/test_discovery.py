"""sources.discovery against a real local web server: pages that link feeds, common paths, none."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from feedlake.tasks.errors import FetchTerminalError, ParseError
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.discovery import (
    COMMON_FEED_PATHS,
    common_feed_urls,
    discover_feed_blocking,
    feed_links,
)
from tests.support.paths import CASES
from tests.support.threaded_http import QuietHandler, serve_handler

CORPUS = CASES / "corpus"
ATOM = (CORPUS / "feed-rs" / "atom_example_5.xml").read_bytes()
RSS = (CORPUS / "feed-rs" / "rss_2.0_bbc.xml").read_bytes()
JSON_FEED = (CORPUS / "RSParser" / "DaringFireball.json").read_bytes()

LINKED_PAGE = b"""<!doctype html>
<html><head><title>A site</title>
<base href="/blog/">
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">
<link rel="alternate" type="application/rss+xml" title="Gone" href="gone.xml">
<LINK REL="Alternate" TYPE="application/rss+xml; charset=utf-8" title="Posts" href="feeds/main.rss">
</head><body><p>Hello</p></body></html>"""
PLAIN_PAGE = b"<!doctype html><html><head><title>Plain</title></head><body>no links</body></html>"
# Malformed links first (an unclosed IPv6 host, a bad port), then the real one.
HOSTILE_PAGE = b"""<html><head><base href="http://[bad/">
<link rel="alternate" type="application/rss+xml" href="http://[bad/">
<link rel="alternate" type="application/rss+xml" href="http://x.example:99999/feed">
<link rel="alternate" type="application/rss+xml" href="/blog/feeds/main.rss">
</head></html>"""
# The feed's own home page link is malformed: it is no site then.
BAD_LINK_JSON = JSON_FEED.replace(b'"home_page_url"', b'"home_page_url": "http://[bad/", "was"', 1)

ROUTES: dict[str, tuple[str, bytes]] = {
    "/linked/": ("text/html; charset=utf-8", LINKED_PAGE),
    "/blog/feeds/main.rss": ("application/rss+xml", RSS),
    "/plain/": ("text/html", PLAIN_PAGE),
    "/feed": ("application/atom+xml", ATOM),
    "/feed.json": ("application/feed+json", JSON_FEED),
    "/hostile/": ("text/html", HOSTILE_PAGE),
    "/badlink.json": ("application/feed+json", BAD_LINK_JSON),
}
REQUESTS: list[str] = []


class Site(QuietHandler):
    """Serves ROUTES; /nofeed-host/... has no /feed (the site root answers 404 there)."""

    def do_GET(self) -> None:
        REQUESTS.append(self.path)
        kind, body = ROUTES.get(self.path, ("text/plain", b""))
        if self.path.startswith("/moved"):
            self.send_response(301)
            self.send_header("Location", "/feed.json")
            self.end_headers()
            return
        self.send_body(200 if body else 404, body, {"Content-Type": kind})


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_handler(Site) as base:
        yield base


@pytest.fixture
def settings() -> FeedlakeSettings:
    return FeedlakeSettings(allow_private_networks=True, backoff_seconds=0)


def test_page_linking_a_feed_resolves_against_base(site: str, settings: FeedlakeSettings) -> None:
    found = discover_feed_blocking(f"{site}/linked/", settings)
    assert found.url == f"{site}/blog/feeds/main.rss"
    assert found.found_by == "<link rel=alternate>"
    assert found.title == "In Our Time"
    assert found.format.startswith("rss")


def test_page_without_links_falls_back_to_common_paths(site: str, settings: FeedlakeSettings) -> None:
    REQUESTS.clear()
    found = discover_feed_blocking(f"{site}/plain/", settings)
    assert found.url == f"{site}/feed"
    assert found.found_by == "common path"
    assert found.title == "USGS Magnitude 2.5+ Earthquakes, Past Hour"
    assert REQUESTS == ["/plain/", "/feed"]


def test_a_feed_url_is_used_as_it_is(site: str, settings: FeedlakeSettings) -> None:
    found = discover_feed_blocking(f"{site}/feed.json", settings)
    assert (found.url, found.found_by, found.format) == (f"{site}/feed.json", "the URL itself", "json1")
    # A permanent redirect moves the feed: the new address is the one to keep.
    assert discover_feed_blocking(f"{site}/moved", settings).url == f"{site}/feed.json"


def test_page_with_no_feed_is_a_clear_error_naming_the_url(settings: FeedlakeSettings) -> None:
    class NoFeeds(QuietHandler):
        def do_GET(self) -> None:
            body = PLAIN_PAGE if self.path == "/" else b"not here"
            self.send_body(200 if self.path == "/" else 404, body, {"Content-Type": "text/html"})

    with serve_handler(NoFeeds) as base, pytest.raises(ParseError) as raised:
        discover_feed_blocking(f"{base}/", settings)
    message = str(raised.value)
    assert f"url {base}/" in message
    assert "no feed found" in message and "/feed.json" in message


def test_a_page_that_cannot_be_fetched_names_the_url(site: str, settings: FeedlakeSettings) -> None:
    with pytest.raises(FetchTerminalError, match=f"url {site}/missing"):
        discover_feed_blocking(f"{site}/missing", settings)


def test_the_ssrf_guard_applies(site: str) -> None:
    with pytest.raises(FetchTerminalError, match="loopback"):
        discover_feed_blocking(f"{site}/feed", FeedlakeSettings(allow_private_networks=False))


def test_feed_links_reads_only_feed_alternates() -> None:
    assert feed_links(LINKED_PAGE, "https://example.org/linked/") == [
        "https://example.org/blog/gone.xml",
        "https://example.org/blog/feeds/main.rss",
    ]
    page = b'<link rel="alternate" type="application/atom+xml" href="javascript:alert(1)">'
    assert feed_links(page, "https://example.org/") == []
    assert feed_links(b"<html><head><link rel=alternate", "https://example.org/") == []
    assert len(COMMON_FEED_PATHS) == 7


def test_malformed_links_are_skipped_not_raised() -> None:
    page_url = "https://example.org/p/"
    # The malformed <base> is ignored: the good link resolves against the page.
    assert feed_links(HOSTILE_PAGE, page_url) == ["https://example.org/blog/feeds/main.rss"]
    assert feed_links(HOSTILE_PAGE.decode(), page_url) == ["https://example.org/blog/feeds/main.rss"]
    # A page whose own URL is malformed yields nothing to try, not a traceback.
    assert feed_links(HOSTILE_PAGE, "http://[bad/") == []
    assert common_feed_urls("http://[bad/") == []
    assert common_feed_urls("https://example.org/p/")[0] == "https://example.org/feed"


def test_discovery_skips_malformed_links_and_keeps_a_usable_site(
    site: str, settings: FeedlakeSettings
) -> None:
    found = discover_feed_blocking(f"{site}/hostile/", settings)
    assert (found.url, found.found_by) == (f"{site}/blog/feeds/main.rss", "<link rel=alternate>")
    assert found.site_url == "http://www.bbc.co.uk/programmes/b006qykl"
    itself = discover_feed_blocking(f"{site}/badlink.json", settings)
    assert (itself.url, itself.found_by, itself.site_url) == (f"{site}/badlink.json", "the URL itself", None)


@pytest.mark.parametrize(
    "junk",
    [
        b"<a x=y " * 10_000,  # quadratic in the standard library's HTMLParser: tens of seconds
        b"<![" * 20_000,  # AssertionError from the standard library's HTMLParser
        b"<?" * 100_000,
        b"\xff\xfe\x00<" * 50_000,  # not UTF-8
    ],
)
def test_hostile_markup_is_scanned_quickly_and_never_raises(junk: bytes) -> None:
    page = b'<html><head><link rel="alternate" type="application/atom+xml" href="/a.xml">' + junk
    started = time.perf_counter()
    assert feed_links(page, "https://example.org/") == ["https://example.org/a.xml"]
    assert time.perf_counter() - started < 2


def test_a_page_of_many_links_is_cut_short() -> None:
    link = b'<link rel="alternate" type="application/rss+xml" href="/f%d">'
    page = b"".join(link % n for n in range(50_000))
    assert feed_links(page, "https://example.org/") == [f"https://example.org/f{n}" for n in range(10)]
