"""Feeds read in worker processes give what reading them here gives: rows, warnings, errors, logs.

Every captured feed of the corpus (well-formed, ill-formed, HTML pages, JSON) is read both ways.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from concurrent.futures import BrokenExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedlake.tasks.pipeline.feed_reading import (
    POOL_MIN_BACKLOG,
    POOL_MIN_FEEDS,
    FeedReaders,
    read_feed,
    reading_pool,
    shutdown_reading_pools,
)
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult
from tests.conftest import CORPUS, CorpusFile
from tests.support.paths import REPO
from tests.support.shell_env import shell_without_prefect


def fetched(entry: CorpusFile) -> tuple[FetchResult, Source]:
    url = f"http://feeds.test/{entry.path}"
    body = (CORPUS / entry.path).read_bytes()
    result = FetchResult(entry.source_id, url, datetime(2026, 11, 28, tzinfo=UTC), status=200, body=body)
    return result, Source(entry.source_id, url, entry.source_id, "test", "news")


@pytest.fixture(scope="module")
def workers():
    readers = FeedReaders(2)
    readers.start()
    yield readers
    shutdown_reading_pools()


def test_every_corpus_feed_reads_the_same_in_a_worker(
    manifest: list[CorpusFile], workers: FeedReaders
) -> None:
    failed = read_ok = 0
    for entry in manifest:
        result, source = fetched(entry)
        here, there = read_feed(result, source, "r1"), workers.read(result, source, "r1")
        assert there.failed_stage == here.failed_stage, entry.path
        assert type(there.error) is type(here.error) and str(there.error) == str(here.error), entry.path
        assert there.warnings == here.warnings, entry.path
        if here.feed is None:
            failed += 1
            continue
        read_ok += 1
        assert there.feed is not None and there.feed.rows.equals(here.feed.rows), entry.path
        assert (there.feed.held is None) == (here.feed.held is None), entry.path
        if here.feed.held is not None:
            assert there.feed.held.equals(here.feed.held), entry.path
    # The corpus holds both kinds: a comparison of failures only, or of successes only, proves little.
    assert read_ok > 100 and failed >= 5


def test_a_workers_log_records_reach_this_process(
    manifest: list[CorpusFile], workers: FeedReaders, caplog: pytest.LogCaptureFixture
) -> None:
    ill_formed = next(e for e in manifest if e.path.endswith("fastfeedparser/kagi.xml"))
    result, source = fetched(ill_formed)
    with caplog.at_level(logging.WARNING):
        reading = workers.read(result, source, "r1")
    assert reading.warnings and "ill-formed XML" in reading.warnings[0]
    logged = [r for r in caplog.records if r.name == "feedlake.tasks.parse.feed"]
    assert [r.getMessage() for r in logged] == [f"source {source.id}: {reading.warnings[0]}"]
    assert all(r.process != os.getpid() for r in logged)  # made in the worker, emitted here


def die_soon() -> None:
    """A worker's job that kills its worker a moment later, as the OOM killer would."""
    time.sleep(1.0)
    os._exit(1)


def test_a_dead_worker_costs_its_feed_nothing(manifest: list[CorpusFile]) -> None:
    readers = FeedReaders(2)
    # A feed whose reading logs a warning: records come back only from a worker.
    result, source = fetched(next(e for e in manifest if e.path.endswith("fastfeedparser/kagi.xml")))
    expected = read_feed(result, source, "r1")
    assert expected.feed is not None
    try:
        readers.start()
        first = reading_pool(2)
        dying = [first.submit(die_soon) for _ in range(2)]  # both workers busy, then gone
        reading = readers.read(result, source, "r1")  # queued behind them when they die
        assert all(isinstance(d.exception(timeout=60), BrokenExecutor) for d in dying)
        assert reading.records == ()  # so it was read in this process
        assert reading.feed is not None and reading.feed.rows.equals(expected.feed.rows)
        assert readers.read(result, source, "r1").records == ()  # and so is the rest of the run
        next_run = FeedReaders(2)
        next_run.start()
        again = next_run.read(result, source, "r1")
        assert again.records and reading_pool(2) is not first  # the next run has a new pool
        assert again.feed is not None and again.feed.rows.equals(expected.feed.rows)
    finally:
        shutdown_reading_pools()


def test_workers_start_only_when_feeds_wait_to_be_read() -> None:
    readers = FeedReaders.for_run(1000, 2)
    try:
        for _ in range(500):  # feeds that trickle in are read as they come: no worker is started
            readers.body_arrived()
            readers.body_done()
        for _ in range(POOL_MIN_BACKLOG - 1):
            readers.body_arrived()
        assert readers.in_workers and not readers.started
        readers.body_arrived()  # now parsing has fallen behind the network
        assert readers.started
    finally:
        shutdown_reading_pools()
    assert not FeedReaders.for_run(POOL_MIN_FEEDS - 1, 2).in_workers  # too few due to ever start them
    assert not FeedReaders.for_run(1000, 1).in_workers  # parse_processes=1 or a one-core machine


def test_a_corpus_poll_in_workers_writes_the_lake_a_poll_without_them_writes(
    manifest: list[CorpusFile], snapshot_base_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    from feedlake.tasks.pipeline.poll import run_poll
    from feedlake.tasks.settings import settings_with
    from tests.conftest import write_sources

    entries = [(e.source_id, f"{snapshot_base_url}/corpus/{e.path}") for e in manifest]
    sources = write_sources(tmp_path / "corpus.yaml", entries)
    summaries, tables = {}, {}
    try:
        for processes in (1, 2):
            lake = tmp_path / f"lake-{processes}"
            settings = settings_with(sources=str(sources), lake=str(lake), parse_processes=processes)
            with caplog.at_level(logging.INFO, logger="feedlake.tasks.pipeline.feed_reading"):
                summaries[processes] = run_poll(settings)
            started = [r for r in caplog.records if "worker processes" in r.getMessage()]
            assert len(started) == (processes - 1)  # the corpus arrives faster than one thread parses
            caplog.clear()
            files = DeltaTable(str(lake / "articles")).file_uris()
            rows = ds.dataset(files, format="parquet").to_table()
            # What differs between two polls by design: when, and by which run.
            keep = [c for c in rows.column_names if c not in ("run_id", "fetched_at", "captured_at")]
            tables[processes] = rows.select(keep).sort_by([("article_id", "ascending")])
    finally:
        shutdown_reading_pools()
    differ = [c for c in tables[1].column_names if not tables[2].column(c).equals(tables[1].column(c))]
    assert tables[2].num_rows > 5000 and differ == []

    def outcome(summary):
        return {
            r.source_id: (r.status, r.error_kind, r.error, r.fetched, r.new, tuple(r.warnings))
            for r in summary.reports
        }

    assert outcome(summaries[2]) == outcome(summaries[1])
    assert sum(r.status == "error" for r in summaries[2].reports) >= 5  # broken feeds failed alike


def test_a_script_without_a_main_guard_still_gets_its_poll(
    manifest: list[CorpusFile], snapshot_base_url: str, tmp_path: Path
) -> None:

    from tests.conftest import write_sources

    entries = [(e.source_id, f"{snapshot_base_url}/corpus/{e.path}") for e in manifest[:40]]
    sources = write_sources(tmp_path / "s.yaml", entries)
    script = tmp_path / "unguarded.py"  # what a user pastes into a file: no __main__ guard
    script.write_text(
        "import feedlake\n"
        f"summary = feedlake.poll({str(sources)!r}, {str(tmp_path / 'lake')!r})\n"
        "print('committed', summary.rows_committed)\n"
    )
    env = shell_without_prefect(
        tmp_path, PYTHONPATH=str(REPO), FEEDLAKE_PARSE_PROCESSES="2", FEEDLAKE_LEASE_WAIT_SECONDS="120"
    )
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split("committed ")[1]) > 400  # the parent read every feed itself
    assert (
        'put the calls of the script that starts feedlake under `if __name__ == "__main__":`' in done.stderr
    )
