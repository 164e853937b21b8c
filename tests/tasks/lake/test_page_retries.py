"""lake.page_retries: the list of pages to try again, committed with the run that changed it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.layout import intent_key
from feedlake.tasks.lake.page_retries import (
    RETRIES,
    RETRY_SCHEMA,
    page_retries_key,
    page_retries_object,
    prune_page_retries,
    read_page_retries,
)
from feedlake.tasks.lake.storage import open_store
from tests.support.article_rows import make_rows

OLDER, NEWER = "20261128T100001Z-00000100", "20261128T100002Z-00000100"


def waiting(source_id: str, count: int) -> pa.Table:
    rows = make_rows(source_id, count)
    return rows.append_column(RETRIES, pa.array([1] * count, pa.int32())).cast(RETRY_SCHEMA)


def commit_list(store, run_id: str, rows: pa.Table) -> None:
    commit_run(store, run_id, [], pa.table({}), {}, reports=[page_retries_object(run_id, rows)])


def test_the_list_that_counts_is_the_last_committed_not_the_highest_run_id(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    # The run with the newer id got the lease first; the older-id run waited, then committed last.
    commit_list(store, NEWER, waiting("a", 1))
    commit_list(store, OLDER, waiting("b", 2))
    assert read_page_retries(store).column("source_id").to_pylist() == ["b", "b"]
    assert prune_page_retries(store, OLDER) == 1
    assert store.list("_pages/") == [page_retries_key(OLDER)]


def test_a_list_of_a_run_in_flight_is_skipped(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    commit_list(store, OLDER, waiting("a", 1))
    # A run in flight (or crashed, not yet recovered) has its intent: its list is not committed.
    store.put(intent_key(NEWER), b'{"run_id": "x"}')
    store.put(page_retries_key(NEWER), page_retries_object(NEWER, waiting("b", 1))[1])
    assert read_page_retries(store).column("source_id").to_pylist() == ["a"], "in flight: skipped"
    store.delete(intent_key(NEWER))
    assert read_page_retries(store).column("source_id").to_pylist() == ["b"], "committed, newer id"


def test_an_empty_lake_has_an_empty_list(tmp_path: Path) -> None:
    assert read_page_retries(open_store(str(tmp_path / "lake"))).num_rows == 0
