"""dedup.seen_rows on real feeds: every distinct entry of a document gets a row, repeats do not.

The feeds are the corpus cases of issue 18 whose distinct entries share a guid or a link; the
reference count is feedparser's, on the same bytes.
"""

from __future__ import annotations

import feedparser
import pyarrow as pa
import pytest

from feedlake.schemas.article import row_keys
from feedlake.tasks.dedup.seen_rows import drop_seen, drop_seen_versions
from tests.support.article_rows import corpus_rows
from tests.support.paths import CORPUS

NOTHING_SEEN = pa.array([], pa.string())
SHARED_IDS = ["feedjira/cnn.xml", "feedjira/apple.xml", "RSParser/scriptingNews.rss"]


def distinct(path: str) -> list[tuple[object, ...]]:
    """feedparser's entries of a corpus file as (id, link, title, summary, content), repeats once."""
    entries = feedparser.parse((CORPUS / path).read_bytes()).entries
    keys = (
        (
            e.get("id"),
            e.get("link"),
            e.get("title"),
            e.get("summary"),
            tuple(c.get("value") for c in e.get("content", [])),
        )
        for e in entries
    )
    return list(dict.fromkeys(keys))


def distinct_entries(path: str) -> int:
    """How many distinct entries feedparser reads in a corpus file."""
    return len(distinct(path))


@pytest.mark.parametrize("path", SHARED_IDS)
def test_every_distinct_entry_of_a_real_feed_is_kept(path: str) -> None:
    # The case: distinct entries that share a guid, or, without one, a link.
    names = [entry[0] or entry[1] for entry in distinct(path)]
    assert len(set(names)) < len(names)
    rows = corpus_rows(f"corpus/{path}", "src").to_batches()[0]
    result = drop_seen(rows, NOTHING_SEEN)
    assert result.new.num_rows == distinct_entries(path)
    assert result.duplicates == rows.num_rows - distinct_entries(path)
    # A second poll of the same document adds nothing.
    assert drop_seen(rows, row_keys(result.new)).new.num_rows == 0


def test_the_edited_version_is_kept_beside_the_first() -> None:
    # scriptingNews.rss: one guid, a 33-character post and, later, its 848-character edit.
    rows = drop_seen(
        corpus_rows("corpus/RSParser/scriptingNews.rss", "src").to_batches()[0], NOTHING_SEEN
    ).new
    by_id: dict[str, list[int]] = {}
    ids, texts = rows.column("article_id").to_pylist(), rows.column("content_text").to_pylist()
    for article_id, text in zip(ids, texts, strict=True):
        by_id.setdefault(article_id, []).append(len(text or ""))
    versions = [sorted(lengths) for lengths in by_id.values() if len(lengths) > 1]
    assert versions and any(lengths[-1] > 10 * lengths[0] for lengths in versions)


def test_backfill_keeps_each_version_once_across_snapshots() -> None:
    # Two captures of the same document in one backfill batch: each version lands once.
    first = corpus_rows("corpus/RSParser/scriptingNews.rss", "src", run_id="a")
    again = corpus_rows("corpus/RSParser/scriptingNews.rss", "src", run_id="b")
    kept = drop_seen_versions(pa.concat_tables([first, again]), NOTHING_SEEN)
    assert kept.num_rows == distinct_entries("RSParser/scriptingNews.rss")
    assert drop_seen_versions(pa.concat_tables([first, again]), row_keys(kept)).num_rows == 0
    assert drop_seen(again.to_batches()[0], row_keys(kept)).new.num_rows == 0
