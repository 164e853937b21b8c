"""Article ids do not change now that the guid column keeps guids as written.

The previous release resolved a permalink guid like a relative URI (``123`` read from
``http://host/news/feed.xml`` became ``http://host/news/123``) and made the article id from that. The
guid column now keeps ``123``; the id must stay what it was, or an existing lake would ingest those
articles again as new ones. ``tests/cases/ids/corpus_article_ids.tsv`` holds the ids the previous
release made from corpus feeds (``make_expected_ids.py`` beside it says how it was generated).
"""

from __future__ import annotations

import csv
import itertools
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urljoin

import pyarrow as pa
import pytest
from lxml import etree

from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.normalize.articles import make_article_id, normalize_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult
from tests.support.paths import CASES, CORPUS
from tests.support.threaded_http import QuietHandler, serve_handler

EXPECTED_IDS = CASES / "ids" / "corpus_article_ids.tsv"
# As make_expected_ids.py parses each feed: a poll of this URL with no response headers.
CORPUS_SOURCE = "corpus"
CORPUS_URL = "http://feeds.example.test/{path}"
ATOM_ID = "{http://www.w3.org/2005/Atom}id"


def expected_ids() -> dict[str, list[tuple[int, str]]]:
    """The fixture: per feed, (entry index, the id the previous release made)."""
    with EXPECTED_IDS.open(encoding="utf-8", newline="") as fixture:
        rows = csv.DictReader((line for line in fixture if not line.startswith("#")), delimiter="\t")
        by_feed = itertools.groupby(rows, key=lambda row: row["path"])
        return {path: [(int(row["entry"]), row["article_id"]) for row in group] for path, group in by_feed}


EXPECTED = expected_ids()


def corpus_batch(path: str, fast_path: bool) -> pa.RecordBatch:
    """A corpus feed parsed and normalized as make_expected_ids.py did with the previous release."""
    url = CORPUS_URL.format(path=path)
    fetched = FetchResult(
        CORPUS_SOURCE, url, datetime(2026, 1, 1, tzinfo=UTC), status=200, body=(CORPUS / path).read_bytes()
    )
    source = Source(CORPUS_SOURCE, url, CORPUS_SOURCE, "t", "news")
    return normalize_feed(parse_feed(fetched, fast_path), source, "r")


def test_the_fixture_covers_the_feeds_whose_guids_are_relative() -> None:
    # The three corpus feeds whose 74 ids changed when guids were first kept as written.
    relative = {"RSParser/livemint.xml", "feed-rs/atom_mediarss_reddit_1.xml", "rss-parser/reddit-home.rss"}
    assert relative <= EXPECTED.keys()
    assert sum(len(EXPECTED[path]) for path in relative) == 74


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "feedparser"])
@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_a_corpus_feed_keeps_the_ids_the_previous_release_made(path: str, fast_path: bool) -> None:
    ids = corpus_batch(path, fast_path).column("article_id").to_pylist()
    assert [(index, ids[index]) for index, _ in EXPECTED[path]] == EXPECTED[path]


@pytest.mark.parametrize(
    ("path", "guid_path"),
    [
        ("RSParser/livemint.xml", "channel/item/guid"),
        ("rss-parser/reddit-home.rss", f"{{*}}entry/{ATOM_ID}"),
        ("feed-rs/atom_mediarss_reddit_1.xml", f"{{*}}entry/{ATOM_ID}"),
    ],
)
def test_the_guid_column_keeps_the_relative_guid_as_written(path: str, guid_path: str) -> None:
    written = [(e.text or "").strip() for e in etree.parse(str(CORPUS / path)).getroot().iterfind(guid_path)]
    batch = corpus_batch(path, fast_path=True)
    assert batch.column("guid").to_pylist() == written
    # The id is the previous release's, made from the guid resolved against the feed's URL.
    url = CORPUS_URL.format(path=path)
    assert batch.column("article_id").to_pylist() == [
        make_article_id(CORPUS_SOURCE, urljoin(url, guid), None, "") for guid in written
    ]


# --- a server's Content-Location changes links, not ids ------------------------------------------

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel xml:base="sections/"><title>T</title><link>./</link>
<item><title>one</title><guid>123</guid><link>story/123.html</link></item>
<item xml:base="../world/"><title>two</title><guid>456</guid></item>
<item><title>three</title><guid xml:base="/g/">789</guid></item>
<item><title>four</title><guid isPermaLink="false">rel/000</guid><link>story/000.html</link></item>
</channel></rss>"""
# Unescaped "&": feedparser's loose parser reads it (a separate base chain of its own).
ILL_FORMED_RSS = RSS.replace(b"<title>T</title>", b"<title>T & T</title>")
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:feed</id>
<entry><title>one</title><id>t3_abc</id><link href="t3_abc.html"/></entry>
<entry xml:base="deep/"><title>two</title><id>t3_def</id></entry>
</feed>"""
SERVER_LOCATION = "https://cdn.example.net/mirror/feed.xml"


class ContentLocationHandler(QuietHandler):
    """Serves ``body`` at any path, with a Content-Location naming another URL when ``location`` is set."""

    body: ClassVar[bytes] = b""
    location: ClassVar[str | None] = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        headers = {"Content-Type": "application/xml"}
        if self.location is not None:
            headers["Content-Location"] = self.location
        self.send_body(200, self.body, headers)


def fetched_twice(server: str, body: bytes) -> tuple[Source, FetchResult, FetchResult]:
    """The same document fetched from the same URL, without and then with a Content-Location."""
    source = Source(id="cl-ids", url=f"{server}/news/feeds/latest", name="cl", publisher="p", kind="news")
    ContentLocationHandler.body = body
    results = []
    for location in (None, SERVER_LOCATION):
        ContentLocationHandler.location = location
        [fetched] = fetch_feeds_blocking([source], {}, FeedlakeSettings())
        assert fetched.error is None, fetched.error
        results.append(fetched)
    return source, results[0], results[1]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "feedparser"])
@pytest.mark.parametrize(
    ("body", "guids", "relative_to_answered"),
    [
        (RSS, ["123", "456", "789", "rel/000"], ["sections/123", "world/456", "/g/789", None]),
        (ILL_FORMED_RSS, ["123", "456", "789", "rel/000"], ["sections/123", "world/456", "/g/789", None]),
        (ATOM, ["t3_abc", "t3_def"], ["t3_abc", "deep/t3_def"]),
    ],
    ids=["rss", "ill-formed-rss", "atom"],
)
def test_a_relative_guid_gets_the_same_id_with_a_content_location_as_without(
    body: bytes, guids: list[str], relative_to_answered: list[str | None], fast_path: bool
) -> None:
    with serve_handler(ContentLocationHandler) as server:
        source, plain, located = fetched_twice(server, body)
    without = normalize_feed(parse_feed(plain, fast_path), source, "run")
    with_location = normalize_feed(parse_feed(located, fast_path), source, "run")
    # The Content-Location is the base of links now...
    assert with_location.column("url").to_pylist()[0].startswith("https://cdn.example.net/")
    assert without.column("url").to_pylist()[0].startswith(server)
    # ...while guids stay as written and ids as the previous release made them: from the guid
    # resolved against the URL that answered (xml:base in scope included), never the header.
    assert without.column("guid").to_pylist() == with_location.column("guid").to_pylist() == guids
    ids = without.column("article_id").to_pylist()
    assert with_location.column("article_id").to_pylist() == ids
    answered = source.url
    assert ids == [
        make_article_id(source.id, urljoin(answered, relative) if relative else guid, None, "")
        for guid, relative in zip(guids, relative_to_answered, strict=True)
    ]


# --- what else the previous release read as a guid ------------------------------------------------

ANSWERED = "https://news.example.org/feeds/latest"


def one_item_ids(
    item: str, fast_path: bool, final_url: str | None = ANSWERED, headers: dict[str, str] | None = None
) -> tuple[str | None, str]:
    """The guid column and the article id of a one-item RSS document."""
    body = f'<rss version="2.0"><channel><title>T</title><item><title>t</title>{item}</item></channel></rss>'
    result = FetchResult(
        "src",
        ANSWERED,
        datetime(2026, 1, 1, tzinfo=UTC),
        final_url=final_url,
        status=200,
        body=body.encode(),
        headers=headers or {},
    )
    batch = normalize_feed(parse_feed(result, fast_path), Source("src", ANSWERED, "src", "t", "news"), "run")
    return batch.column("guid")[0].as_py(), batch.column("article_id")[0].as_py()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "feedparser"])
@pytest.mark.parametrize(
    ("item", "guid", "id_from"),
    [
        # Two guids at one depth: the later one is the entry's, for the column and the id alike.
        ("<guid>one</guid><guid>two</guid>", "two", urljoin(ANSWERED, "two")),
        # A guid inside <source> is the source's, not the entry's.
        ('<source url="http://s.example/">S</source><guid>x y</guid>', "x y", urljoin(ANSWERED, "x y")),
        # A guid that is no permalink was never resolved.
        ('<guid isPermaLink="false">rel/1</guid>', "rel/1", "rel/1"),
        ("<guid>urn:uuid:1b4e28ba</guid>", "urn:uuid:1b4e28ba", "urn:uuid:1b4e28ba"),
    ],
)
def test_an_item_id_is_made_from_the_guid_the_previous_release_read(
    item: str, guid: str, id_from: str, fast_path: bool
) -> None:
    assert one_item_ids(item, fast_path) == (guid, make_article_id("src", id_from, None, ""))


def test_a_capture_resolves_guids_against_its_content_location_as_the_previous_release_did() -> None:
    # A WARC record's headers are the server's: the previous release resolved against its
    # Content-Location, as written (no URL answered a fetch of this run).
    location = "https://mirror.example.org/archive/feed.xml"
    for fast_path in (True, False):
        ids = one_item_ids(
            "<guid>123</guid>", fast_path, final_url=None, headers={"Content-Location": location}
        )
        assert ids == ("123", make_article_id("src", urljoin(location, "123"), None, ""))


def test_a_guid_the_feedparser_path_could_not_resolve_leaves_the_id_to_the_link() -> None:
    # feedparser's join fails on "http://[bad" and the previous release read no guid there: the id
    # was the link's (the fast path kept the guid, and still does).
    item = "<guid>http://[bad</guid><link>http://site.example/x</link>"
    link_only = one_item_ids("<link>http://site.example/x</link>", fast_path=False)[1]
    assert one_item_ids(item, fast_path=False) == ("http://[bad", link_only)
    assert one_item_ids(item, fast_path=True) == (
        "http://[bad",
        make_article_id("src", "http://[bad", None, ""),
    )


def test_a_json_feed_id_was_never_resolved() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "123", "url": "p/1"}]}'
    for headers in ({}, {"Content-Location": "https://cdn.example.net/x/feed.json"}):
        fetched = FetchResult(
            "src",
            ANSWERED,
            datetime(2026, 1, 1, tzinfo=UTC),
            final_url=ANSWERED,
            status=200,
            body=body,
            headers=headers,
        )
        batch = normalize_feed(parse_feed(fetched), Source("src", ANSWERED, "src", "t", "news"), "run")
        assert batch.column("guid").to_pylist() == ["123"]
        assert batch.column("article_id").to_pylist() == [make_article_id("src", "123", None, "")]
