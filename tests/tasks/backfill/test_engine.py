"""The backfill engine: every article once, idempotent with itself and polls, resumable, parallel."""

from __future__ import annotations

import re
from datetime import UTC, date
from email.utils import parsedate_to_datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from feedlake.tasks.backfill.captures import archive_captures, http_fetcher, wayback_captures
from feedlake.tasks.backfill.engine import (
    MAX_IN_FLIGHT,
    WORKER_NICENESS,
    in_flight_limit,
    lower_priority,
    read_checkpoint,
    run_backfill,
    start_or_resume,
)
from feedlake.tasks.lake.delta_table import KIND_KEY, commit_history
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.pipeline.backfill import commit_backfill_batch
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.validate.validator import ArticleValidator
from tests.support.archive_server import ORIGINAL_URL, serve_archive_site


class Interrupted(BaseException):
    """Raised in place of a commit: the process died there."""


@pytest.fixture(scope="module")
def site():
    with serve_archive_site() as served:
        yield served


@pytest.fixture(scope="module")
def validator() -> ArticleValidator:
    return ArticleValidator()


def source(url: str) -> Source:
    return Source("economist", url, "economist", "test", "news")


def backfill(store: ObjectStore, base: str, validator, *, commit=commit_backfill_batch, workers=1, **options):
    target = source(f"{base}/archive/feed.xml")
    checkpoint, resumed = start_or_resume(store, target.id, "archive")
    fetch = http_fetcher(FeedlakeSettings(per_host_min_gap_seconds=0), target)
    captures = archive_captures(fetch, target.url, checkpoint.cursor)
    return run_backfill(
        store,
        target,
        captures,
        checkpoint,
        validator=validator,
        commit=commit,
        lease_seconds=60,
        lease_wait_seconds=5,
        row_group_rows=1024,
        workers=workers,
        batch_rows=options.pop("batch_rows", 50),
        resumed=resumed,
        **options,
    )


def articles(lake: Path) -> list[tuple[str, str]]:
    table = ds.dataset(lake / "articles", format="parquet", partitioning="hive").to_table()
    return sorted(
        zip(table.column("article_id").to_pylist(), table.column("content_hash").to_pylist(), strict=True)
    )


def test_archive_backfill_writes_every_article_once_in_its_own_date(tmp_path: Path, site, validator) -> None:
    base, _ = site
    store = open_store(str(tmp_path / "lake"))
    result = backfill(store, base, validator)
    assert (result.captures, result.rows_seen, result.rows_written, result.duplicates) == (6, 300, 300, 0)
    assert result.commits == 6 and result.finished
    table = ds.dataset(tmp_path / "lake" / "articles", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(set(table.column("article_id").to_pylist())) == 300
    assert set(table.column("capture_source").to_pylist()) == {"archive"}
    # Each row sits in the partition of its own publication date, read independently from the feed.
    stated = {
        parsedate_to_datetime(m).astimezone(UTC).date().isoformat()
        for m in re.findall(r"<pubDate>([^<]+)</pubDate>", "".join(site[1].items))
    }
    assert {d.isoformat() for d in table.column("published_date").to_pylist()} == stated
    assert read_checkpoint(store, "economist").finished
    again = backfill(store, base, validator)
    assert (again.rows_written, again.duplicates, again.resumed) == (0, 300, False)
    assert len(articles(tmp_path / "lake")) == 300


def test_interrupted_backfill_resumes_to_the_same_rows(tmp_path: Path, site, validator) -> None:
    base, _ = site
    clean = open_store(str(tmp_path / "clean"))
    backfill(clean, base, validator)
    store = open_store(str(tmp_path / "lake"))
    commits = []

    def dies_on_third_commit(*args):
        if len(commits) == 2:
            raise Interrupted
        commits.append(commit_backfill_batch(*args))
        return commits[-1]

    with pytest.raises(Interrupted):
        backfill(store, base, validator, commit=dies_on_third_commit)
    checkpoint = read_checkpoint(store, "economist")
    assert checkpoint is not None and not checkpoint.finished and checkpoint.captures == 2
    resumed = backfill(store, base, validator)
    assert resumed.resumed and resumed.duplicates == 0
    # The resumed run starts at the checkpoint's cursor: the first two documents are not read again.
    assert resumed.captures == 4
    assert articles(tmp_path / "lake") == articles(tmp_path / "clean")


def test_overlapping_a_poll_adds_nothing_twice(tmp_path: Path, site, validator) -> None:
    from feedlake.tasks.fetch.client import fetch_feeds_blocking
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from tests.support.lake_ops import poll_once

    base, _ = site
    store = open_store(str(tmp_path / "lake"))
    target = source(f"{base}/archive/feed.xml")
    live = fetch_feeds_blocking([target], {}, FeedlakeSettings())[0]
    poll_once(
        store,
        pa.Table.from_batches([normalize_feed(parse_feed(live), target, "poll")]),
        "20261123T000000Z-poll",
    )
    result = backfill(store, base, validator)
    assert (result.rows_written, result.duplicates) == (250, 50)
    assert len(articles(tmp_path / "lake")) == 300


def test_two_worker_processes_give_the_same_rows(tmp_path: Path, site, validator) -> None:
    base, _ = site
    one = open_store(str(tmp_path / "one"))
    backfill(one, base, validator, workers=1)
    two = open_store(str(tmp_path / "two"))
    result = backfill(two, base, validator, workers=2)
    assert result.rows_written == 300
    assert articles(tmp_path / "two") == articles(tmp_path / "one")


def test_since_and_until_keep_articles_of_those_dates(tmp_path: Path, site, validator) -> None:
    base, _ = site
    store = open_store(str(tmp_path / "lake"))
    result = backfill(store, base, validator, since=date(2025, 1, 1), until=date(2025, 6, 30))
    table = ds.dataset(tmp_path / "lake" / "articles", format="parquet", partitioning="hive").to_table()
    dates = table.column("published_date").to_pylist()
    assert result.rows_written == table.num_rows > 0
    assert min(dates) >= date(2025, 1, 1) and max(dates) <= date(2025, 6, 30)


def test_wayback_snapshots_overlap_but_each_article_lands_once(tmp_path: Path, site, validator) -> None:
    base, _ = site
    store = open_store(str(tmp_path / "lake"))
    target = source(ORIGINAL_URL)
    fetch = http_fetcher(FeedlakeSettings(per_host_min_gap_seconds=0), target)
    total, captures = wayback_captures(fetch, f"{base}/wb", ORIGINAL_URL)
    checkpoint, _ = start_or_resume(store, target.id, "wayback")
    result = run_backfill(
        store,
        target,
        captures,
        checkpoint,
        validator=validator,
        commit=commit_backfill_batch,
        lease_seconds=60,
        lease_wait_seconds=5,
        row_group_rows=1024,
        batch_rows=250,
    )
    # Windows of 100 items sliding back 40 at a time, cut off at the 300th item: 680 rows seen.
    assert total == 8 and result.rows_seen == sum(min(100, 300 - 40 * k) for k in range(8)) == 680
    assert result.rows_written == 300 and result.duplicates == 380
    table = ds.dataset(tmp_path / "lake" / "articles", format="parquet", partitioning="hive").to_table()
    assert set(table.column("capture_source").to_pylist()) == {"wayback"}
    assert set(table.column("feed_url").to_pylist()) == {ORIGINAL_URL}
    kinds = [c[KIND_KEY] for c in commit_history(store, "articles") if c.get(KIND_KEY) != "create"]
    assert kinds and all(kind == "backfill" for kind in kinds)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_link_mid_chain_keeps_what_was_read_and_names_the_url(
    tmp_path: Path, site, validator, workers: int
) -> None:
    from datetime import datetime

    from feedlake.tasks.errors import FetchTerminalError
    from feedlake.tasks.values import FetchResult

    base, _ = site
    store = open_store(str(tmp_path / "lake"))
    target = source(f"{base}/archive/feed.xml")
    real = http_fetcher(FeedlakeSettings(per_host_min_gap_seconds=0), target)
    broken = f"{base}/archive/page-3.xml"

    def flaky(url: str) -> FetchResult:
        if url == broken:
            error = FetchTerminalError("HTTP 404", source_id="economist", url=url, status=404)
            return FetchResult("economist", url, datetime.now(UTC), status=404, error=error)
        return real(url)

    checkpoint, _ = start_or_resume(store, "economist", "archive")
    with pytest.raises(FetchTerminalError, match="page-3.xml"):
        run_backfill(
            store,
            target,
            archive_captures(flaky, target.url),
            checkpoint,
            validator=validator,
            commit=commit_backfill_batch,
            lease_seconds=60,
            lease_wait_seconds=5,
            row_group_rows=1024,
            batch_rows=1000,  # one batch: without the flush on error, nothing would be kept
            # With workers, the documents before the broken link are still with them when it breaks.
            workers=workers,
        )
    assert len(articles(tmp_path / "lake")) == 150
    assert read_checkpoint(store, "economist").cursor == broken
    resumed = backfill(store, base, validator)
    assert resumed.resumed and resumed.captures == 3 and len(articles(tmp_path / "lake")) == 300


def test_workers_keep_about_a_batch_of_rows_in_flight() -> None:
    assert in_flight_limit(2, 50_000, 0, 0) == 4  # nothing read yet: two documents per worker
    assert in_flight_limit(2, 50_000, 10, 10_000) == 52  # 1,000-row documents: a batch, plus one each
    assert in_flight_limit(2, 50, 6, 300) == 4  # a batch is one document: never fewer than 2 x workers
    assert in_flight_limit(2, 50_000, 10, 100) == MAX_IN_FLIGHT  # tiny documents: memory stays bounded


def test_worker_processes_run_at_a_lower_priority() -> None:
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=lower_priority) as pool:
        assert pool.submit(os.nice, 0).result() == min(19, os.nice(0) + WORKER_NICENESS)
