"""The default suite's rules on what the publisher wrote: dates judged, not erased; versions kept.

Issue 18: the parser keeps any date the feed gave; the suite holds an implausible one in the
quarantine with the reason. Two versions of one article may land in one run; the same version twice
may not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import feedlake
from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.dedup.seen_rows import drop_seen
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.validate.validator import ArticleValidator
from feedlake.tasks.values import FeedEntry, ParsedFeed
from tests.conftest import write_sources
from tests.support.article_rows import corpus_rows
from tests.support.threaded_http import QuietHandler, serve_handler

DATE_LABEL = "expect_column_values_to_be_between(published_at)"
SOURCE = Source("dates", "https://example.org/feed.xml", "D", "P", "news")
# A feed that writes one date in 2090, one in 1900, one plausible, and two stories under one link.
HOSTILE_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile dates</title><link>https://example.org/</link>
<item><title>From the future</title><link>https://example.org/a</link><guid>a</guid>
  <pubDate>Sat, 01 Jan 2090 08:00:00 +0000</pubDate></item>
<item><title>From the past</title><link>https://example.org/b</link><guid>b</guid>
  <pubDate>Mon, 01 Jan 1900 00:00:00 +0000</pubDate></item>
<item><title>Today's news</title><link>https://example.org/c</link><guid>c</guid>
  <pubDate>Mon, 09 Dec 2024 01:00:00 +0000</pubDate></item>
<item><title>First story on the section page</title><link>https://example.org/section</link>
  <pubDate>Mon, 09 Dec 2024 02:00:00 +0000</pubDate></item>
<item><title>Second story on the section page</title><link>https://example.org/section</link>
  <pubDate>Mon, 09 Dec 2024 03:00:00 +0000</pubDate></item>
</channel></rss>"""


@pytest.fixture(scope="module")
def validator() -> ArticleValidator:
    return ArticleValidator()


def dated_rows(*dates: str) -> pa.Table:
    entries = tuple(
        FeedEntry(guid=f"g{i}", link=f"https://example.org/{i}", title=f"T{i}", published_raw=raw)
        for i, raw in enumerate(dates)
    )
    parsed = ParsedFeed(
        "dates", SOURCE.url, datetime(2025, 1, 2, tzinfo=UTC), "rss20", None, None, None, entries
    )
    return pa.Table.from_batches([normalize_feed(parsed, SOURCE, "r")])


def test_implausible_dates_are_held_with_the_reason_and_kept_as_written(validator: ArticleValidator) -> None:
    rows = dated_rows("Sat, 01 Jan 2090 08:00:00 GMT", "1900-01-01T00:00:00Z", "2024-12-09T01:00:00Z")
    outcome = validator.validate(rows)
    held = outcome.quarantined.to_pylist()
    assert [r["title"] for r in held] == ["T0", "T1"]
    assert [r["failed_expectations"] for r in held] == [[DATE_LABEL], [DATE_LABEL]]
    # The quarantine holds the date the feed wrote, not a null.
    assert [r["published_at"] for r in held] == [
        datetime(2090, 1, 1, 8, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
    ]
    assert [r["date_source"] for r in held] == ["named_zone", "explicit_offset"]
    assert outcome.accepted.column("title").to_pylist() == ["T2"]


def test_two_versions_of_one_article_pass_and_a_repeated_version_is_rejected(
    validator: ArticleValidator,
) -> None:
    # scriptingNews.rss: edited entries under one guid, kept as versions by the dedup stage.
    rows = corpus_rows("corpus/RSParser/scriptingNews.rss", "scripting")
    versions = pa.Table.from_batches([drop_seen(rows.to_batches()[0], pa.array([], pa.string())).new])
    assert len(versions.column("article_id").unique()) < versions.num_rows
    outcome = validator.validate(versions)
    assert outcome.quarantined.num_rows == 0 and outcome.accepted.num_rows == versions.num_rows
    repeated = pa.concat_tables([versions, versions.slice(0, 1)])
    held = validator.validate(repeated).quarantined
    assert held.num_rows == 2
    assert set(held.column("article_id").to_pylist()) == {versions.column("article_id")[0].as_py()}
    label = "expect_compound_columns_to_be_unique"
    assert held.column("failed_expectations").to_pylist() == [[label], [label]]


class HostileFeed(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_body(200, HOSTILE_RSS, {"Content-Type": "application/rss+xml"})


def lake_table(lake: Path, folder: str) -> pa.Table:
    return ds.dataset(lake / folder, format="parquet", partitioning="hive").to_table()


def test_a_poll_keeps_far_dates_in_quarantine_partitioned_by_them(tmp_path: Path) -> None:
    settings = FeedlakeSettings(allow_private_networks=True, per_host_min_gap_seconds=0.0)
    with serve_handler(HostileFeed) as base:
        sources = write_sources(tmp_path / "sources.yaml", [("hostile", f"{base}/feed.xml")])
        first = feedlake.poll(sources, tmp_path / "lake", settings)
        again = feedlake.poll(sources, tmp_path / "lake", settings)
    assert (first.rows_committed, first.rows_quarantined) == (3, 2)
    held = lake_table(tmp_path / "lake", "_quarantine")
    by_title = {r["title"]: r for r in held.to_pylist()}
    assert set(by_title) == {"From the future", "From the past"}
    assert by_title["From the future"]["published_at"] == datetime(2090, 1, 1, 8, tzinfo=UTC)
    assert by_title["From the past"]["published_at"] == datetime(1900, 1, 1, tzinfo=UTC)
    assert all(r["failed_expectations"] == [DATE_LABEL] for r in by_title.values())
    # Partitioned under the month of the day the feed wrote: valid partition folders.
    folders = sorted(p.name for p in (tmp_path / "lake" / "_quarantine").iterdir() if p.name != "_delta_log")
    assert folders == ["published_month=1900-01", "published_month=2090-01"]
    accepted = lake_table(tmp_path / "lake", "articles")
    assert sorted(accepted.column("title").to_pylist()) == [
        "First story on the section page",
        "Second story on the section page",
        "Today's news",
    ]
    assert len(accepted.column("article_id").unique()) == 3
    assert accepted.schema.field("published_at").type == ARTICLE_SCHEMA.field("published_at").type
    # The same document again adds nothing, held or accepted.
    assert (again.rows_committed, again.rows_quarantined) == (0, 0)
