"""dedup.seen_rows: dropping rows the lake holds and repeats within a batch."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from feedlake.schemas.article import row_keys
from feedlake.tasks.dedup.seen_rows import drop_seen
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FeedEntry, ParsedFeed

SOURCE = Source(id="dedup-src", url="https://example.org/feed.xml", name="D", publisher="P", kind="news")
NOTHING_SEEN = pa.array([], pa.string())


def batch(*entries: tuple[str, str]) -> pa.RecordBatch:
    """A normalized batch with one row per (guid, title) pair."""
    parsed = ParsedFeed(
        source_id=SOURCE.id,
        feed_url=SOURCE.url,
        fetched_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        format="rss20",
        title=None,
        link=None,
        language=None,
        entries=tuple(
            FeedEntry(guid=guid, link=f"https://example.org/{guid}", title=title, summary=f"About {title}")
            for guid, title in entries
        ),
    )
    return normalize_feed(parsed, SOURCE, "run-1")


def titles(records: pa.RecordBatch) -> list[str]:
    return [str(t) for t in records.column("title").to_pylist()]


def test_row_keys_join_id_and_hash() -> None:
    rows = batch(("a", "A"), ("b", "B"))
    ids = rows.column("article_id").to_pylist()
    hashes = rows.column("content_hash").to_pylist()
    assert row_keys(rows).to_pylist() == [f"{i}:{h}" for i, h in zip(ids, hashes, strict=True)]
    assert row_keys(pa.Table.from_batches([rows])).to_pylist() == row_keys(rows).to_pylist()


def test_nothing_seen_keeps_every_distinct_row() -> None:
    rows = batch(("a", "A"), ("b", "B"), ("c", "C"))
    result = drop_seen(rows, NOTHING_SEEN)
    assert result.new.equals(rows)
    assert result.duplicates == 0


def test_seen_keys_are_dropped() -> None:
    earlier = batch(("a", "A"), ("b", "B"))
    now = batch(("a", "A"), ("b", "B"), ("c", "C"))
    result = drop_seen(now, row_keys(earlier))
    assert titles(result.new) == ["C"]
    assert result.duplicates == 2
    assert result.new.schema.equals(now.schema, check_metadata=True)


def test_everything_seen_leaves_an_empty_batch() -> None:
    rows = batch(("a", "A"), ("b", "B"))
    result = drop_seen(rows, row_keys(rows))
    assert (result.new.num_rows, result.duplicates) == (0, 2)
    assert result.new.schema.equals(rows.schema, check_metadata=True)


def test_identical_repeats_collapse_and_versions_are_kept() -> None:
    rows = batch(("a", "first A"), ("b", "B"), ("a", "second A"), ("a", "first A"), ("b", "B"))
    assert len(set(rows.column("article_id").to_pylist())) == 2
    result = drop_seen(rows, NOTHING_SEEN)
    # Same guid, other content: an edit, kept as a version of the same article.
    assert titles(result.new) == ["first A", "B", "second A"]
    assert result.duplicates == 2
    assert len(set(result.new.column("article_id").to_pylist())) == 2
    # A later poll of the same document adds nothing.
    again = drop_seen(rows, row_keys(result.new))
    assert (again.new.num_rows, again.duplicates) == (0, rows.num_rows)


def test_edited_article_is_kept() -> None:
    earlier = batch(("a", "Original title"), ("b", "B"))
    now = batch(("a", "Corrected title"), ("b", "B"))
    assert now.column("article_id").to_pylist() == earlier.column("article_id").to_pylist()
    result = drop_seen(now, row_keys(earlier))
    assert titles(result.new) == ["Corrected title"]
    assert result.duplicates == 1


def test_seen_index_from_another_source_does_not_drop() -> None:
    other = Source(id="other-src", url=SOURCE.url, name="O", publisher="P", kind="news")
    rows = batch(("a", "A"))
    elsewhere = normalize_feed(
        ParsedFeed(
            source_id=other.id,
            feed_url=other.url,
            fetched_at=datetime(2025, 1, 2, tzinfo=UTC),
            format="rss20",
            title=None,
            link=None,
            language=None,
            entries=(FeedEntry(guid="a", link="https://example.org/a", title="A", summary="About A"),),
        ),
        other,
        "run-0",
    )
    assert drop_seen(rows, row_keys(elsewhere)).duplicates == 0


def test_empty_batch() -> None:
    empty = batch()
    result = drop_seen(empty, row_keys(batch(("a", "A"))))
    assert (result.new.num_rows, result.duplicates) == (0, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from(["T1", "T2"])), max_size=12),
    st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from(["T1", "T2"])), max_size=6),
)
def test_counts_add_up(current: list[tuple[str, str]], previous: list[tuple[str, str]]) -> None:
    rows = batch(*current)
    seen = row_keys(batch(*previous)) if previous else NOTHING_SEEN
    result = drop_seen(rows, seen)
    assert result.new.num_rows + result.duplicates == rows.num_rows
    # Expected by hand: each distinct (guid, title) once, in feed order, unless it was seen before.
    expected = [pair for pair in dict.fromkeys(current) if pair not in set(previous)]
    assert titles(result.new) == [t for _, t in expected]
    keys = row_keys(result.new).to_pylist()
    assert len(set(keys)) == len(keys)
