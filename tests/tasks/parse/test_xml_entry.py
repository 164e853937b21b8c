"""An entry's link, guid, enclosures and language, read the same way by both readers.

Hostile cases from RSS 2.0 (guid, isPermaLink, link, dc:language), Atom RFC 4287 (4.2.7 links and
their rel, 4.2.6 id, xml:lang) and JSON Feed 1.1 (item language). Each XML case goes through the lxml
fast path and through feedparser (``fast_path=False``) and must give the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.parse.xml_fast_path import read_well_formed_feed
from feedlake.tasks.values import FetchResult, ParsedFeed
from tests.tasks.parse.test_xml_fast_path import HEADERS, URL, assert_same_rows, rows

SITE = "http://feeds.example.org"


def read_both(body: bytes) -> tuple[ParsedFeed, ParsedFeed]:
    """The body read by feedparser and by the fast path, which must have read it itself."""
    assert read_well_formed_feed(body, {"content-location": URL, **HEADERS}) is not None
    fetched = FetchResult(
        "src", URL, datetime(2026, 11, 24, tzinfo=UTC), status=200, body=body, headers=HEADERS
    )
    slow, fast = parse_feed(fetched, fast_path=False), parse_feed(fetched)
    assert_same_rows(slow, fast)
    return slow, fast


def column(parsed: ParsedFeed, name: str) -> list[object]:
    """One column of the normalized rows of a parsed feed."""
    batch: pa.RecordBatch = rows(parsed)
    return batch.column(name).to_pylist()


def atom_entries(*entries: str, lang: str = "") -> bytes:
    """An Atom 1.0 document with these entry bodies (each gets an id unless it has one)."""
    root_lang = f' xml:lang="{lang}"' if lang else ""
    body = "".join(
        f"<entry>{'' if '<id>' in e else f'<id>urn:x:{n}</id>'}<title>t{n}</title>"
        f"<updated>2026-01-0{n + 1}T00:00:00Z</updated>{e}</entry>"
        for n, e in enumerate(entries)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"{root_lang}>'
        f"<title>F</title><id>urn:x:feed</id><updated>2026-01-01T00:00:00Z</updated>{body}</feed>"
    ).encode()


def rss_items(*items: str, channel: str = "") -> bytes:
    """An RSS 2.0 document with these item bodies."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>F</title><link>{SITE}/</link>{channel}"
        + "".join(f"<item>{i}</item>" for i in items)
        + "</channel></rss>"
    ).encode()


# --- the link (RFC 4287 4.2.7.2: no rel means alternate; an enclosure is a file, not the article) ---

LINK_CASES = [
    # a link without href before the alternate one, an enclosure between them
    ('<link rel="alternate"/><link rel="enclosure" href="a.mp3" type="audio/mpeg"/><link href="s"/>', "s"),
    # a blank href names the feed document itself once resolved: it is no link
    ('<link rel="alternate" href=" "/><link rel="enclosure" href="a.mp3"/><link href="s"/>', "s"),
    # a later link without href, or with an empty one, does not erase the alternate
    ('<link rel="alternate" href="s"/><link rel="alternate"/>', "s"),
    ('<link rel="alternate" href="s"/><link rel="alternate" href=""/>', "s"),
    # an enclosure written as text is an enclosure, never the article
    ('<link rel="alternate" href="s"/><link rel="enclosure">a.mp3</link>', "s"),
    # the first alternate is the article; other relations never are
    ('<link rel="related" href="r"/><link href="s"/><link rel="alternate" href="second"/>', "s"),
    # the IANA IRI form of the relation, and a media type with parameters, are the same link
    (
        '<link rel="http://www.iana.org/assignments/relation/alternate"'
        ' type="text/html; charset=utf-8" href="s"/>',
        "s",
    ),
    # an HTML alternate is preferred over a PDF one, whatever the order; a PDF alone is the article
    ('<link rel="alternate" type="application/pdf" href="s.pdf"/><link href="s"/>', "s"),
    ('<link rel="alternate" type="application/pdf" href="s.pdf"/>', "s.pdf"),
]


@pytest.mark.parametrize(("links", "expected"), LINK_CASES)
def test_the_article_link_is_the_first_alternate_with_an_href(links: str, expected: str) -> None:
    for parsed in read_both(atom_entries(links)):
        (entry,) = parsed.entries
        assert entry.link == f"{SITE}/news/{expected}"
        assert column(parsed, "url") == [f"{SITE}/news/{expected}"]


def test_an_enclosure_is_never_the_link_even_when_it_is_the_only_link() -> None:
    for parsed in read_both(atom_entries('<link rel="enclosure" href="a.mp3"/>')):
        (entry,) = parsed.entries
        # feedparser's rule, kept: the atom:id stands in, and an urn is no web address.
        assert entry.link == "urn:x:0"
        assert column(parsed, "url") == [None]
        assert [e.url for e in entry.enclosures] == [f"{SITE}/news/a.mp3"]


def test_enclosures_are_resolved_and_keep_only_the_type_the_feed_gave() -> None:
    body = atom_entries(
        '<link href="s"/><link rel="enclosure" href="a.mp3"/><link rel="enclosure">b.ogg</link>'
    )
    for parsed in read_both(body):
        (entry,) = parsed.entries
        # feedparser gives an untyped enclosure link the type "text/html"; the feed said nothing.
        assert [(e.url, e.type) for e in entry.enclosures] == [
            (f"{SITE}/news/a.mp3", None),
            (f"{SITE}/news/b.ogg", None),
        ]
    rss = rss_items('<link>/s</link><enclosure url="/media/a.mp3" type="audio/mpeg" length="9"/>')
    for parsed in read_both(rss):
        enclosure = {"url": f"{SITE}/media/a.mp3", "type": "audio/mpeg", "length": 9}
        assert column(parsed, "enclosures") == [[enclosure]]


def test_an_rss_link_element_is_the_link_and_a_permalink_guid_stands_in_for_a_missing_one() -> None:
    body = rss_items(
        "<guid>/a/1</guid><link>/story/1</link>",
        "<guid>/a/2</guid>",
        '<guid isPermaLink="false">/a/3</guid>',
        "<link></link><guid>/a/4</guid>",
    )
    for parsed in read_both(body):
        assert [e.link for e in parsed.entries] == [f"{SITE}/story/1", f"{SITE}/a/2", None, f"{SITE}/a/4"]


# --- the guid, as the feed gave it (RSS 2.0 guid, RFC 4287 4.2.6 atom:id, JSON Feed id) ---


def test_the_guid_is_kept_as_written_not_resolved_or_case_folded() -> None:
    guids = ["1559104147038", "/a/7", "HTTP://Example.COM/Story?", "t3_157kyrd", "tag:example.com,2026:1"]
    body = rss_items(*(f"<title>{n}</title><guid>{g}</guid><link>/s/{n}</link>" for n, g in enumerate(guids)))
    for parsed in read_both(body):
        assert [e.guid for e in parsed.entries] == guids
        assert column(parsed, "guid") == guids
        # The links still are the <link> elements, resolved.
        assert column(parsed, "url") == [f"{SITE}/s/{n}" for n in range(len(guids))]
    atom = atom_entries('<id>t3_157kyrd</id><link href="s"/>', "<id> HTTP://Example.COM/A </id>")
    for parsed in read_both(atom):
        assert column(parsed, "guid") == ["t3_157kyrd", "HTTP://Example.COM/A"]
        # With no link, the id stands in as the link, resolved (so the scheme folded), and only there.
        assert [e.link for e in parsed.entries] == [f"{SITE}/news/s", "http://Example.COM/A"]


def test_distinct_relative_guids_give_distinct_article_ids_in_any_feed_url() -> None:
    body = rss_items("<guid>1</guid><title>a</title>", "<guid>2</guid><title>b</title>")
    slow, fast = read_both(body)
    assert column(slow, "article_id") == column(fast, "article_id")
    assert len(set(column(fast, "article_id"))) == 2


# --- the language: the item's own, else the xml:lang in force, else the feed's ---


def test_an_items_own_language_wins_over_the_channels() -> None:
    body = rss_items(
        "<title>a</title><dc:language>fr</dc:language>",
        "<dc:language>it</dc:language><title>b</title>",
        "<title>c</title><language>es</language>",
        "<title>d</title><dc:language> </dc:language>",
        "<title>e</title>",
        channel="<language>en-GB</language>",
    )
    body = body.replace(b"<item><title>d", b'<item xml:lang="de"><title>d')
    for parsed in read_both(body):
        assert parsed.language == "en-GB"
        assert [e.language for e in parsed.entries] == ["fr", "it", "es", "de", None]
        assert column(parsed, "language") == ["fr", "it", "es", "de", "en-gb"]


def test_an_entrys_xml_lang_is_its_language_even_without_text_to_carry_it() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><title>F</title><id>urn:f</id>'
        b'<entry xml:lang="pt_BR"><id>urn:1</id><updated>2026-01-01T00:00:00Z</updated></entry>'
        b'<entry><id>urn:2</id><title xml:lang="de">b</title></entry>'
        b"<entry><id>urn:3</id><title>c</title></entry></feed>"
    )
    for parsed in read_both(body):
        assert column(parsed, "language") == ["pt-br", "de", "en"]


def test_a_json_feed_items_language_wins_over_the_feeds() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "language": "en", "items": ['
        b'{"id": "1", "content_text": "x", "language": "fr-CA"}, {"id": "2", "content_text": "y"}]}'
    )
    parsed = parse_feed(FetchResult("src", URL, datetime(2026, 11, 24, tzinfo=UTC), status=200, body=body))
    assert column(parsed, "language") == ["fr-ca", "en"]
