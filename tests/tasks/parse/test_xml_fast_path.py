"""The lxml fast path against feedparser's path: the same rows from every real feed of the corpus."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest

from feedlake.tasks.errors import FeedlakeError
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.parse.feedparser_rules import resolve_uris
from feedlake.tasks.parse.xml_fast_path import read_well_formed_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult, ParsedFeed
from tests.support.paths import CASES

CORPUS = CASES / "corpus"
# Every captured XML feed (JSON Feeds go through neither XML path).
FEEDS = sorted(
    p
    for p in CORPUS.rglob("*")
    if p.is_file()
    and p.name not in {"MANIFEST.tsv", "README.md"}
    and p.read_bytes().lstrip()[:1] not in b"{["
)
URL = "http://feeds.example.org/news/feed.xml"
HEADERS = {"content-type": "application/xml"}


class _Canonical(HTMLParser):
    """Markup as a list of tokens with sorted attributes: equal when only attribute order differs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[object] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # feedparser's resolver writes a valueless attribute (<img alt>) as alt="alt"; HTML means "".
        values = sorted((k, "" if v in (None, "", k) else v) for k, v in attrs)
        self.tokens.append(("<", tag, values))

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append(("</", tag))

    def handle_data(self, data: str) -> None:
        self.tokens.append(data)


def canonical(markup: str | None) -> list[object] | None:
    """Tokens of a piece of markup, attribute order ignored."""
    if markup is None:
        return None
    parser = _Canonical()
    parser.feed(markup)
    parser.close()
    return parser.tokens


def both_paths(body: bytes, source_id: str = "src") -> tuple[ParsedFeed, ParsedFeed]:
    """The feed read by feedparser alone and by the default path (fast path first)."""
    fetched = FetchResult(
        source_id, URL, datetime(2026, 11, 24, tzinfo=UTC), status=200, body=body, headers=HEADERS
    )
    return parse_feed(fetched, fast_path=False), parse_feed(fetched)


def rows(parsed: ParsedFeed) -> pa.RecordBatch:
    """The normalized rows of a parsed feed."""
    return normalize_feed(parsed, Source(parsed.source_id, URL, parsed.source_id, "p", "news"), "run")


def assert_same_rows(slow: ParsedFeed, fast: ParsedFeed) -> None:
    """Every column equal; content_html equal as markup (nh3 keeps attribute order as given)."""
    assert (slow.format, slow.title, slow.link, slow.language, slow.links) == (
        fast.format,
        fast.title,
        fast.link,
        fast.language,
        fast.links,
    )
    a, b = rows(slow), rows(fast)
    for name in a.schema.names:
        if name == "content_html":
            assert [canonical(v) for v in a.column(name).to_pylist()] == [
                canonical(v) for v in b.column(name).to_pylist()
            ], name
        else:
            assert a.column(name) == b.column(name), name


def test_the_corpus_is_here() -> None:
    assert len(FEEDS) > 150


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_fast_path_gives_feedparsers_rows(path: Path) -> None:
    body = path.read_bytes()
    try:
        slow, fast = both_paths(body, re.sub(r"[^a-z0-9]+", "-", path.name.lower())[:60])
    except FeedlakeError:
        with pytest.raises(FeedlakeError):
            parse_feed(FetchResult("x", URL, datetime.now(UTC), status=200, body=body, headers=HEADERS))
        return
    assert_same_rows(slow, fast)


def test_fast_path_reads_most_of_the_corpus() -> None:
    # Speed comes from coverage: a change that quietly sends feeds back to feedparser fails here.
    read = declined = 0
    for path in FEEDS:
        body = path.read_bytes()
        fast = read_well_formed_feed(body, {"content-location": URL, **HEADERS})
        if fast is None:
            declined += body.count(b"<item") + body.count(b"<entry")
        else:
            read += len(fast.entries)
    assert read > 4000
    assert read / (read + declined) > 0.85


def _rss(items: str, channel: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>T</title><link>http://example.org/</link>{channel}{items}</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<rss version='2.0'><channel><item><title>x</item></channel></rss>", "not well-formed"),
        (b"<!DOCTYPE rss SYSTEM 'x.dtd'><rss version='2.0'><channel/></rss>", "a DOCTYPE"),
        (_rss("<item><image><title>x</title></image></item>"), "an image inside an item"),
        (_rss("<item><title>a <b>b</b></title></item>"), "markup inside a title"),
        (
            b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
            b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></content></entry></feed>',
            "inline XHTML",
        ),
    ],
)
def test_unusual_documents_go_to_feedparser(body: bytes, why: str) -> None:
    assert read_well_formed_feed(body, {"content-location": URL}) is None, why


def test_a_charset_header_that_disagrees_sends_the_feed_to_feedparser() -> None:
    body = _rss("<item><title>caf\u00e9</title></item>")
    assert read_well_formed_feed(body, {"content-type": "text/xml; charset=utf-8"}) is not None
    assert read_well_formed_feed(body, {"content-type": "text/xml; charset=iso-8859-1"}) is None


def test_feedparser_rules_hold_on_the_fast_path() -> None:
    body = _rss(
        # a guid that is not a permalink stays as written, whatever the attribute's case
        '<item><guid isPermalink="false">42</guid><title>first</title><title>second</title></item>'
        # a permalink guid stays as written and, resolved, becomes the link when there is none
        "<item><guid>/a/7</guid><media:content><media:title>from media</media:title></media:content></item>"
        # a second summary-like element is read as content
        "<item><title>t</title><description>&lt;p&gt;d&lt;/p&gt;</description>"
        "<itunes:summary>plain words</itunes:summary></item>",
    )
    slow, fast = both_paths(body)
    assert_same_rows(slow, fast)
    first, second, third = fast.entries
    assert (first.guid, first.title) == ("42", "first")
    assert (second.guid, second.link, second.title) == ("/a/7", "http://feeds.example.org/a/7", "from media")
    assert (third.summary, third.content, third.content_is_html) == ("<p>d</p>", "plain words", False)


def test_a_channel_summary_read_as_content_changes_the_first_item() -> None:
    # feedparser carries "has content" from the channel into the first item, and only the first.
    channel = "<itunes:summary>s</itunes:summary><description>d</description>"
    item = (
        "<item><title>t</title><description>html</description><itunes:summary>plain</itunes:summary></item>"
    )
    slow, fast = both_paths(_rss(item * 2, channel))
    assert_same_rows(slow, fast)
    assert [(e.summary, e.content) for e in fast.entries] == [("plain", None), ("html", "plain")]


def test_resolve_uris_makes_link_and_media_urls_absolute() -> None:
    markup = (
        '<p><a href="/story?id=1&amp;x=2">s</a> <img src=//cdn.example.org/i.png alt=""> '
        "<a href='https://other.example/x'>o</a> <a href=\"javascript:alert(1)\">j</a> a</br>b</p>"
    )
    resolved = resolve_uris(markup, "https://news.example.org/feed/")
    assert 'href="https://news.example.org/story?id=1&amp;x=2"' in resolved
    assert 'src="https://cdn.example.org/i.png"' in resolved
    assert 'href="https://other.example/x"' in resolved
    assert 'href="javascript:alert(1)"' in resolved  # left for the sanitizer, as feedparser leaves it
    assert "</br>" not in resolved
