"""One malformed item or hostile markup costs that item at most, never its feed (issue 14).

Each document holds a good item beside the bad one; both must survive parse, normalize and a
Parquet write. The bad values follow what JSON Feed 1.1 and XML 1.0 forbid: wrong JSON types, lone
surrogates, character references to surrogates or past U+10FFFF, nesting no article needs.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedlake.tasks.errors import ParseError
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.normalize.html_text import MAX_NESTING, flatten_deep_markup, html_to_text, sanitize_html
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult, ParsedFeed

URL = "https://example.org/feed"
SOURCE = Source(id="hostile", url=URL, name="Hostile", publisher="Test", kind="blog")
GOOD = {"id": "good-1", "title": "Good item", "url": "https://example.org/good", "content_text": "fine"}


def parse(body: bytes, fast_path: bool = True) -> ParsedFeed:
    fetched = FetchResult(source_id=SOURCE.id, url=URL, fetched_at=datetime.now(UTC), body=body, headers={})
    return parse_feed(fetched, fast_path=fast_path)


def stored_rows(parsed: ParsedFeed, tmp_path: Path) -> list[dict[str, object]]:
    """Normalize, write to Parquet and read back: what the lake would hold."""
    batch = normalize_feed(parsed, SOURCE, "run-1")
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_batches([batch]), path)
    return pq.read_table(path).to_pylist()


def json_feed(bad_item: str) -> bytes:
    items = f"[{json.dumps(GOOD)}, {bad_item}]"
    return f'{{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": {items}}}'.encode()


@pytest.mark.parametrize(
    ("bad_item", "field", "expected"),
    [
        # JSON's \ud800 escape decodes to a lone surrogate, which UTF-8 (and Parquet) cannot hold.
        (r'{"id": "b", "title": "bad \ud800 title"}', "title", "bad \ufffd title"),
        (r'{"id": "b", "title": "x", "content_html": "<p>a\udfffb</p>"}', "content_text", "a\ufffdb"),
        ('{"id": "b", "title": "x", "tags": 5}', "categories", []),
        ('{"id": "b", "title": "x", "tags": "abc"}', "categories", []),
        ('{"id": "b", "title": "x", "tags": ["ok", 5, {}]}', "categories", ["ok"]),
        ('{"id": "b", "title": "x", "attachments": 5}', "enclosures", []),
        ('{"id": "b", "title": "x", "authors": "x"}', "authors", []),
        ('{"id": "b", "title": 7}', "title", None),
        ('{"id": "b", "title": NaN}', "title", None),
        ('{"id": "b", "title": "x", "date_published": 5}', "published_raw", None),
        ('{"id": "b", "title": "x", "content_html": []}', "content_text", None),
        ('{"id": "b", "title": "x", "language": 5}', "language", None),
        ('{"id": "b", "title": "x", "url": "http://[::1"}', "url", None),
        ('{"id": 12, "title": "x"}', "guid", "12"),  # the spec: a numeric id is coerced to a string
        ('{"id": {}, "title": "x"}', "guid", None),
        ('{"id": true, "title": "x"}', "guid", None),
    ],
)
def test_json_feed_field_of_the_wrong_type_is_dropped(
    bad_item: str, field: str, expected: object, tmp_path: Path
) -> None:
    rows = stored_rows(parse(json_feed(bad_item)), tmp_path)
    assert [r["title"] for r in rows][0] == "Good item"
    assert len(rows) == 2
    assert rows[1][field] == expected


@pytest.mark.parametrize(
    "size",
    ["1e30", "100000000000000000000000", str(10**200), "-5", "true", '"12"', "1.5", "Infinity"],
)
def test_json_feed_attachment_size_outside_int64_is_dropped(size: str, tmp_path: Path) -> None:
    item = f'{{"id": "b", "title": "x", "attachments": [{{"url": "/a.mp3", "size_in_bytes": {size}}}]}}'
    rows = stored_rows(parse(json_feed(item)), tmp_path)
    assert len(rows) == 2
    assert rows[1]["enclosures"] == [{"url": "https://example.org/a.mp3", "type": None, "length": None}]


def test_json_feed_attachment_size_in_range_is_kept(tmp_path: Path) -> None:
    item = '{"id": "b", "attachments": [{"url": "https://e.org/a", "size_in_bytes": 9223372036854775807}]}'
    rows = stored_rows(parse(json_feed(item)), tmp_path)
    assert rows[1]["enclosures"][0]["length"] == 2**63 - 1


def test_json_feed_items_that_are_not_objects_are_skipped(tmp_path: Path) -> None:
    body = json_feed('5, "x", null, [], {"id": "b", "title": "kept"}')
    assert [r["title"] for r in stored_rows(parse(body), tmp_path)] == ["Good item", "kept"]


def test_json_feed_a_5000_digit_number_does_not_fail_the_document(tmp_path: Path) -> None:
    # Python refuses int("9" * 5000); the reader reads such literals as (infinite) floats.
    item = '{"id": "b", "title": "x", "attachments": [{"url": "/a", "size_in_bytes": ' + "9" * 5000 + "}]}"
    assert len(stored_rows(parse(json_feed(item)), tmp_path)) == 2


def test_json_nested_too_deeply_is_a_parse_error() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [], "x": ' + b"[" * 100_000
    body += b"]" * 100_000 + b"}"
    with pytest.raises(ParseError, match="nested too deeply"):
        parse(body)


def rss(bad: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://example.org/</link>"
        "<item><title>Good item</title><link>https://example.org/good</link></item>"
        f"<item><title>bad {bad} title</title><link>https://example.org/bad</link>"
        f"<description>body {bad} text</description></item></channel></rss>"
    ).encode()


def atom(bad: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        "<id>urn:feed</id><updated>2024-01-01T00:00:00Z</updated>"
        '<entry><title>Good item</title><id>urn:good</id><link href="https://example.org/good"/>'
        "<updated>2024-01-01T00:00:00Z</updated></entry>"
        f'<entry><title>bad {bad} title</title><id>urn:bad</id><link href="https://example.org/bad"/>'
        "<updated>2024-01-01T00:00:00Z</updated>"
        f'<content type="html">body {bad} text</content></entry></feed>'
    ).encode()


@pytest.mark.parametrize("document", [rss, atom], ids=["rss", "atom"])
@pytest.mark.parametrize("fast_path", [True, False], ids=["lxml-first", "feedparser"])
@pytest.mark.parametrize(
    "reference", ["&#xD800;", "&#xdfff;", "&#55296;", "&#x110000;", "&#99999999999;", "&#xFFFE;"]
)
def test_xml_reference_to_a_non_character_becomes_replacement_character(
    document: object, fast_path: bool, reference: str, tmp_path: Path
) -> None:
    assert callable(document)
    rows = stored_rows(parse(document(reference), fast_path=fast_path), tmp_path)
    assert [r["title"] for r in rows] == ["Good item", "bad \ufffd title"]
    assert rows[1]["content_text"] == "body \ufffd text"


def test_ordinary_character_references_are_untouched() -> None:
    feed = parse(rss("&#8217;&#x2019;&#x1F600;&#128512;"))
    assert feed.entries[1].title == "bad \u2019\u2019\U0001f600\U0001f600 title"


NESTED = {
    "div": "<div>" * 100_000 + "deep text" + "</div>" * 100_000,
    "b": "<b>" * 100_000 + "deep text" + "</b>" * 100_000,
    "unclosed": "<div><span><p>" * 100_000 + "deep text",
    "misnested": "<span><div></span>" * 100_000 + "deep text",
    # The parser reopens every unclosed <b> in each new paragraph: work per paragraph, not depth.
    "formatting-reopened": "".join(f"<p><b class=c{i}></p>" for i in range(20_000)) + "deep text",
}


@pytest.mark.parametrize("markup", NESTED.values(), ids=NESTED.keys())
def test_deeply_nested_markup_costs_bounded_time_and_keeps_its_text(markup: str) -> None:
    started = time.perf_counter()
    text = html_to_text(markup)
    cleaned = sanitize_html(markup)
    # A generous bound: the quadratic case took about a minute for 100,000 nested <div>.
    assert time.perf_counter() - started < 5
    assert text.endswith("deep text")
    assert "deep text" in cleaned
    assert flatten_deep_markup(markup).dropped_tags > 0


def test_deeply_nested_item_in_a_feed_lands_with_its_text(tmp_path: Path) -> None:
    escaped = ("&lt;div&gt;" * 100_000) + "deep text" + ("&lt;/div&gt;" * 100_000)
    started = time.perf_counter()
    rows = stored_rows(parse(rss("x").replace(b"body x text", escaped.encode())), tmp_path)
    assert time.perf_counter() - started < 10
    assert [r["content_text"] for r in rows][1] == "deep text"


@pytest.mark.parametrize(
    "markup",
    [
        "<div>" * MAX_NESTING + "x" + "</div>" * MAX_NESTING,  # as deep as allowed
        "<ul>" + "<li>item" * 1000 + "</ul>",  # unclosed <li> close each other
        "<p>para" * 1000,
        "<div><p>a</p></div>" * 1000,
        "<table>" + "<tr><td>a<td>b" * 500 + "</table>",
        "<b>bold</b> <i>it</i> <br>" * 1000,
    ],
)
def test_ordinary_markup_is_returned_unchanged(markup: str) -> None:
    assert flatten_deep_markup(markup) == flatten_deep_markup(markup, max_nesting=10**9)
    assert flatten_deep_markup(markup).markup is markup
