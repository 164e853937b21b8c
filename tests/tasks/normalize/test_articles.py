"""normalize.articles: entries to article RecordBatches on the CENTCOM fixture and arbitrary entries."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.normalize.canonical_urls import canonical_url
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import Enclosure, FeedEntry, FetchResult, ParsedFeed
from tests.support.paths import CASES

CENTCOM = CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml"
FEED_URL = "https://www.centcom.mil/DesktopModules/ArticleCS/RSS.ashx?ContentType=2&Site=808&isdashboardselected=0&max=20"
SOURCE = Source(
    "centcom-press-releases", FEED_URL, "CENTCOM", "U.S. Central Command", "official", language="en"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def centcom(fetched_at: datetime | None = None) -> ParsedFeed:
    when = fetched_at or datetime.now(UTC)
    return parse_feed(FetchResult(SOURCE.id, FEED_URL, when, body=CENTCOM.read_bytes(), headers={}))


def rows(batch: pa.RecordBatch) -> list[dict[str, object]]:
    return batch.to_pylist()


def first_item_paragraphs() -> list[str]:
    """The paragraphs of the first item's description, read with ElementTree and a regex."""
    description = ET.parse(CENTCOM).getroot().findtext("channel/item/description")
    assert description is not None
    paragraphs = re.findall(r"<p>(.*?)</p>", description, re.DOTALL)
    return [" ".join(html.unescape(p).split()) for p in paragraphs]


def test_centcom_first_row() -> None:
    batch = normalize_feed(centcom(), SOURCE, "run-1")
    items = ET.parse(CENTCOM).getroot().findall("channel/item")
    assert batch.num_rows == len(items) == 3
    first = rows(batch)[0]
    assert first["title"] == items[0].findtext("title")
    assert first["url"] == first["guid"] == items[0].findtext("link")
    assert first["published_at"] == datetime(2024, 12, 9, 1, 0, tzinfo=UTC)
    assert first["published_date"] == date(2024, 12, 9)
    assert first["published_raw"] == "Mon, 09 Dec 2024 01:00:00 GMT"
    assert first["date_source"] == "named_zone"
    assert first["updated_at"] is None
    assert first["authors"] == ["U.S. Central Command Public Affairs"]
    assert first["language"] == "en-us"  # the feed's <language> wins over the source default
    assert (first["source_id"], first["feed_url"], first["run_id"]) == (SOURCE.id, FEED_URL, "run-1")


def test_centcom_content_text_keeps_every_paragraph() -> None:
    content = rows(normalize_feed(centcom(), SOURCE, "run-1"))[0]["content_text"]
    assert isinstance(content, str)
    expected = first_item_paragraphs()
    assert len(expected) == 10
    assert content.split("\n\n") == expected
    assert "\u201cCENTCOM, together with allies" in content
    assert "\u201cThe strikes against the ISIS leaders" in content  # from &amp;#8220;
    assert "the group\u2019s leader" in content  # from &amp;#8217;
    assert '"There should be no doubt' in content  # from &quot;


def test_centcom_text_fields_hold_no_markup() -> None:
    for row in rows(normalize_feed(centcom(), SOURCE, "run-1")):
        for name in ("title", "summary_text", "content_text"):
            value = row[name]
            assert isinstance(value, str) and value
            assert "<" not in value and "&#" not in value and "&quot;" not in value
        html_value = row["content_html"]
        assert isinstance(html_value, str) and html_value.startswith("<p>")


def test_centcom_enclosure_and_timestamps() -> None:
    batch = normalize_feed(centcom(), SOURCE, "run-1")
    third = rows(batch)[2]
    enclosure = ET.parse(CENTCOM).getroot().findall("channel/item")[2].find("enclosure")
    assert enclosure is not None
    expected = {"url": enclosure.get("url"), "type": enclosure.get("type"), "length": 52428}
    assert third["enclosures"] == [expected]
    assert enclosure.get("length") == "52428"
    for name in ("published_at", "updated_at", "fetched_at"):
        assert batch.schema.field(name).type == pa.timestamp("us", tz="UTC")
    assert batch.schema.equals(ARTICLE_SCHEMA, check_metadata=True)


def test_article_id_is_stable_across_runs() -> None:
    first = normalize_feed(centcom(datetime(2024, 12, 9, 2, tzinfo=UTC)), SOURCE, "run-1")
    second = normalize_feed(centcom(datetime(2025, 1, 1, 12, tzinfo=UTC)), SOURCE, "run-2")
    assert first.column("article_id").to_pylist() == second.column("article_id").to_pylist()
    assert first.column("content_hash").to_pylist() == second.column("content_hash").to_pylist()
    assert len(set(first.column("article_id").to_pylist())) == 3
    assert first.column("fetched_at").to_pylist() != second.column("fetched_at").to_pylist()
    assert set(second.column("run_id").to_pylist()) == {"run-2"}


def only_row(parsed: ParsedFeed, entry: FeedEntry, run_id: str = "r") -> dict[str, object]:
    return rows(normalize_feed(dataclasses.replace(parsed, entries=(entry,)), SOURCE, run_id))[0]


def test_content_hash_changes_with_the_title_but_the_id_does_not() -> None:
    parsed = centcom()
    first = parsed.entries[0]
    before = only_row(parsed, first)
    after = only_row(parsed, dataclasses.replace(first, title=f"Corrected: {first.title}"), "run-2")
    assert after["article_id"] == before["article_id"]
    assert after["content_hash"] != before["content_hash"]
    assert only_row(parsed, first, "run-3")["content_hash"] == before["content_hash"]


def test_article_id_without_guid_follows_the_url_then_the_content() -> None:
    parsed = centcom()
    entry = dataclasses.replace(parsed.entries[0], guid=None)
    by_url = only_row(parsed, entry)["article_id"]
    assert by_url != only_row(parsed, parsed.entries[0])["article_id"]
    tracked = dataclasses.replace(entry, link=f"{entry.link}?utm_source=rss#top")
    assert only_row(parsed, tracked)["article_id"] == by_url
    bare = dataclasses.replace(entry, link=None)
    bare_ids = {only_row(parsed, bare, run_id)["article_id"] for run_id in ("a", "b")}
    assert len(bare_ids) == 1 and by_url not in bare_ids


def test_urls_are_canonical() -> None:
    parsed = centcom()
    links = (
        "HTTPS://www.CENTCOM.mil:443/x/?utm_source=rss&id=7#frag",
        "../MEDIA/p/?fbclid=a",
        "javascript:x",
    )
    entries = tuple(dataclasses.replace(e, link=link) for e, link in zip(parsed.entries, links, strict=True))
    batch = normalize_feed(dataclasses.replace(parsed, entries=entries), SOURCE, "r")
    assert batch.column("url").to_pylist() == [
        "https://www.centcom.mil/x/?id=7",
        "https://www.centcom.mil/DesktopModules/MEDIA/p/",
        None,
    ]
    for url in rows(normalize_feed(centcom(), SOURCE, "r")):
        assert url["url"] == canonical_url(str(url["url"]))


def test_empty_feed_gives_an_empty_batch_with_the_schema() -> None:
    batch = normalize_feed(dataclasses.replace(centcom(), entries=()), SOURCE, "r")
    assert batch.num_rows == 0
    assert batch.schema.equals(ARTICLE_SCHEMA, check_metadata=True)


# --- arbitrary entries -----------------------------------------------------------------------

FRAGMENTS = [
    "<p>",
    "</p>",
    "<br>",
    "<script>x()</script>",
    "&amp;",
    "&#8220;",
    "&#0;",
    "\x00",
    "\x1b",
    "\u2028",
]
MARKUP = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), max_size=8).map("".join)
TEXT = st.one_of(st.none(), st.text(max_size=40), MARKUP)
DATES = ["Mon, 09 Dec 2024 01:00:00 GMT", "2024-12-09T01:00:00+02:00", "2024-12-09", "9999-99-99"]
ISO = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)).map(datetime.isoformat)
DATE_TEXT = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(DATES), ISO)
LINKS = ["/rel/path?utm_source=x", "http://[broken/", "javascript:x", "https://ex.org/a#b", "//cdn.ex.org/i"]
LINK = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(LINKS))
FALLBACK = st.one_of(st.none(), st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
ENTRY = st.builds(
    FeedEntry,
    guid=TEXT,
    link=LINK,
    title=TEXT,
    title_is_html=st.booleans(),
    summary=TEXT,
    summary_is_html=st.booleans(),
    content=TEXT,
    content_is_html=st.booleans(),
    authors=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    categories=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    enclosures=st.lists(
        st.builds(
            Enclosure,
            url=st.text(max_size=20),
            type=st.one_of(st.none(), st.text(max_size=10)),
            length=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
        ),
        max_size=2,
    ).map(tuple),
    published_raw=DATE_TEXT,
    updated_raw=DATE_TEXT,
    published_parsed=FALLBACK,
    updated_parsed=FALLBACK,
    language=st.one_of(st.none(), st.text(max_size=8)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRY, max_size=5), feed_language=st.one_of(st.none(), st.text(max_size=6)))
def test_arbitrary_entries_make_a_valid_batch_that_survives_parquet(
    entries: list[FeedEntry], feed_language: str | None
) -> None:
    fetched_at = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    parsed = ParsedFeed(
        source_id="fuzz",
        feed_url="https://example.org/feed.xml",
        fetched_at=fetched_at,
        format="rss20",
        title=None,
        link=None,
        language=feed_language,
        entries=tuple(entries),
    )
    source = Source(id="fuzz", url="https://example.org/feed.xml", name="F", publisher="P", kind="blog")
    batch = normalize_feed(parsed, source, "run-fuzz")
    assert batch.schema.equals(ARTICLE_SCHEMA, check_metadata=True)
    assert batch.num_rows == len(entries)
    for entry, row in zip(entries, rows(batch), strict=True):
        for name in ("title", "summary_text", "content_text"):
            value = row[name]
            assert value is None or (isinstance(value, str) and not CONTROL.search(value))
        # The guid is kept as the feed gave it, only trimmed.
        assert row["guid"] == ((entry.guid or "").strip() or None)
        url = row["url"]
        assert url is None or (
            isinstance(url, str) and url.startswith(("http://", "https://")) and "#" not in url
        )
        published = row["published_at"]
        # Any year is kept as written (the suite judges plausibility); always an aware UTC instant.
        assert published is None or (
            isinstance(published, datetime) and published.utcoffset() == timedelta(0)
        )
        assert row["date_source"] in ("explicit_offset", "named_zone", "assumed_utc", "missing")
        assert (row["published_at"] is None) == (row["date_source"] == "missing")
    table = pa.Table.from_batches([batch])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    back = pq.read_table(buffer)
    assert back.equals(table)
    assert back.to_pylist() == table.to_pylist()
    # Parquet names list items "element" where Arrow says "item"; the rest of the schema comes back whole.
    assert back.schema.names == ARTICLE_SCHEMA.names
    assert [f.metadata for f in back.schema] == [f.metadata for f in ARTICLE_SCHEMA]
    assert back.schema.metadata == ARTICLE_SCHEMA.metadata
    for name in ("published_at", "updated_at", "fetched_at", "published_date", "article_id"):
        assert back.schema.field(name).equals(ARTICLE_SCHEMA.field(name))


def unchecked_entry(**fields: object) -> FeedEntry:
    """An entry holding values FeedEntry's own checks would clean: what a parser bug could let through."""
    entry = FeedEntry()
    for name, value in fields.items():
        object.__setattr__(entry, name, value)
    return entry


def test_items_that_cannot_be_normalized_are_held_and_the_rest_kept() -> None:
    from feedlake.tasks.normalize.articles import normalize_entries

    parsed = centcom()
    good = parsed.entries
    surrogate = unchecked_entry(guid="s", link="https://example.com/s", title="lone \ud800 surrogate")
    not_a_list = unchecked_entry(guid="c", title="categories", categories=5)
    entries = (good[0], surrogate, not_a_list, *good[1:])
    feed = normalize_entries(dataclasses.replace(parsed, entries=entries), SOURCE, "r")
    assert feed.rows.num_rows == len(good) and feed.rows.schema == ARTICLE_SCHEMA
    assert feed.rows.column("guid").to_pylist() == [e.guid for e in good]
    assert feed.held is not None
    held = {row["guid"]: row for row in feed.held.to_pylist()}
    assert held["s"]["title"] == "lone ? surrogate" and held["s"]["url"] == "https://example.com/s"
    assert held["s"]["failed_expectations"][0].startswith("normalize: UnicodeEncodeError")
    assert held["c"]["failed_expectations"] == ["normalize: TypeError: 'int' object is not iterable"]
    assert {row["stage"] for row in held.values()} == {"normalize"}
    # Held rows are quarantine rows: they survive a Parquet round trip like any other.
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([feed.held]), buffer)
    assert pq.read_table(io.BytesIO(buffer.getvalue())).num_rows == 2


def test_normalize_feed_still_refuses_a_feed_with_an_item_it_cannot_normalize() -> None:
    import pytest

    from feedlake.tasks.errors import ParseError

    entry = unchecked_entry(guid="s", title="\ud800")
    with pytest.raises(ParseError, match="could not be normalized: normalize: UnicodeEncodeError"):
        normalize_feed(dataclasses.replace(centcom(), entries=(entry,)), SOURCE, "r")


# --- entries of one document that share a guid or a link ---------------------------------------

PAGE = "https://example.org/section/"


def document(*entries: FeedEntry) -> pa.RecordBatch:
    """One feed document holding ``entries``, normalized."""
    parsed = ParsedFeed(
        source_id=SOURCE.id,
        feed_url="https://example.org/feed.xml",
        fetched_at=datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC),
        format="rss20",
        title=None,
        link=None,
        language=None,
        entries=entries,
    )
    return normalize_feed(parsed, SOURCE, "r")


def ids_and_hashes(batch: pa.RecordBatch) -> list[tuple[str, str]]:
    return list(
        zip(batch.column("article_id").to_pylist(), batch.column("content_hash").to_pylist(), strict=True)
    )


def test_entries_sharing_only_a_link_are_different_articles() -> None:
    # Apple Hot News lists two stories under one link and no guid (feedjira/apple.xml).
    first = FeedEntry(link=PAGE, title="iPhone arrives in more countries", summary="On Friday.")
    second = FeedEntry(link=f"{PAGE}#later", title="iOS receives reviews", summary="Enthusiastic.")
    batch = document(first, second)
    (first_id, first_hash), (second_id, second_hash) = ids_and_hashes(batch)
    assert first_id != second_id and first_hash != second_hash
    # The first entry with the link keeps the id it always had: the one it gets alone.
    assert first_id == document(first).column("article_id")[0].as_py()
    # Stable: the same document gives the same ids at every poll.
    assert ids_and_hashes(document(first, second)) == ids_and_hashes(batch)


def test_a_later_entry_with_the_same_link_and_title_is_a_version() -> None:
    first = FeedEntry(link=PAGE, title="Budget passed", summary="The vote was 51 to 49.")
    edited = FeedEntry(link=PAGE, title="Budget passed", summary="The vote was 52 to 48.")
    other = FeedEntry(link=PAGE, title="Storm warning", summary="Stay home.")
    (a, a_hash), (b, b_hash), (c, _) = ids_and_hashes(document(first, edited, other))
    assert a == b and a_hash != b_hash  # one article, two versions
    assert c not in (a, b)


def test_untitled_entries_sharing_a_link_are_told_apart_by_their_text() -> None:
    one = FeedEntry(link=PAGE, summary="A short post.")
    two = FeedEntry(link=PAGE, summary="Another post, longer and different.")
    batch = document(one, two, one)
    (a, a_hash), (b, _), (c, c_hash) = ids_and_hashes(batch)
    assert a != b
    assert (c, c_hash) == (a, a_hash)  # an identical repeat: the dedup stage keeps it once


def test_a_shared_guid_with_other_content_is_one_article_in_versions() -> None:
    # scriptingNews.rss lists a post and, later, its edited 848-character version under one guid.
    short = FeedEntry(guid="post-1", link=PAGE, summary="First draft.")
    edited = FeedEntry(guid="post-1", link=PAGE, summary="First draft, expanded into a longer post.")
    (a, a_hash), (b, b_hash) = ids_and_hashes(document(short, edited))
    assert a == b and a_hash != b_hash


def test_an_entry_left_out_does_not_take_the_link_from_the_next() -> None:
    # The first entry with the link fails after its id was made; its row is cut back and held.
    failing = unchecked_entry(link=PAGE, title="Broken", categories=5)
    kept = FeedEntry(link=PAGE, title="Fine", summary="Text.")
    from feedlake.tasks.normalize.articles import normalize_entries

    parsed = dataclasses.replace(centcom(), feed_url="https://example.org/feed.xml", entries=(failing, kept))
    feed = normalize_entries(parsed, SOURCE, "r")
    alone = dataclasses.replace(parsed, entries=(kept,))
    assert (
        feed.rows.column("article_id").to_pylist()
        == normalize_feed(alone, SOURCE, "r").column("article_id").to_pylist()
    )


def test_a_date_far_out_is_kept_and_partitions_under_its_own_day() -> None:
    # The parser parses, the suite judges: published_at keeps what the feed wrote.
    batch = document(
        FeedEntry(guid="future", link=PAGE, title="Future", published_raw="Sat, 01 Jan 2090 08:00:00 +0000"),
        FeedEntry(guid="past", link=PAGE, title="Past", published_raw="1900-01-01T00:00:00Z"),
    )
    found = rows(batch)
    assert [r["published_at"] for r in found] == [
        datetime(2090, 1, 1, 8, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
    ]
    assert [r["date_source"] for r in found] == ["explicit_offset", "explicit_offset"]
    assert [r["published_date"] for r in found] == [date(2090, 1, 1), date(1900, 1, 1)]
