"""Compaction: many small files become a few, rows stay identical, filters respected."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from feedlake.tasks.lake.commit import list_commits, live_files
from feedlake.tasks.lake.compact import compact_lake
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import open_store
from tests.support.article_rows import make_rows
from tests.support.lake_ops import poll_once

A = f"{ARTICLES}/source_id=a"
B = f"{ARTICLES}/source_id=b"


def lake_table(root: Path):
    table = ds.dataset(root / ARTICLES, format="parquet", partitioning="hive").to_table()
    return table.sort_by([("article_id", "ascending"), ("content_hash", "ascending")])


def files_per_partition(store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in store.list(f"{ARTICLES}/"):
        folder = key.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def test_two_hundred_polls_compact_to_one_file_per_partition(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    for run in range(200):
        # Each poll brings two new articles, one per day partition: 200 tiny files per partition.
        rows = make_rows("a", 2 * (run + 1))
        poll_once(store, rows.slice(2 * run), f"r{run:03d}")
    before = lake_table(tmp_path)
    assert set(files_per_partition(store).values()) == {200}
    done = compact_lake(store, "z", target_bytes=128 << 20, row_group_rows=64 * 1024)
    assert {d.files_before for d in done} == {200} and {d.files_after for d in done} == {1}
    assert set(files_per_partition(store).values()) == {1}
    after = lake_table(tmp_path)
    assert after.equals(before)
    assert list_commits(store)[-1].kind == "compact"
    assert sorted(store.list(f"{ARTICLES}/")) == [f.key for f in live_files(store)]
    # Compacting again finds nothing to do.
    assert compact_lake(store, "zz", target_bytes=128 << 20, row_group_rows=64 * 1024) == []


def test_target_size_splits_large_partitions(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    for run in range(20):
        poll_once(store, make_rows("a", 400 * (run + 1)).slice(400 * run), f"r{run:03d}")
    total = sum(len(store.get(k) or b"") for k in store.list(f"{ARTICLES}/"))
    done = compact_lake(store, "z", target_bytes=total // 8, row_group_rows=1024)
    assert all(2 <= d.files_after <= 6 for d in done), done
    assert sum(d.rows for d in done) == 8000


@pytest.mark.parametrize(
    ("source_id", "since", "compacted"),
    [
        (
            "a",
            None,
            {
                "articles/source_id=a/published_date=2024-12-08",
                "articles/source_id=a/published_date=2024-12-09",
            },
        ),
        (
            None,
            date(2024, 12, 9),
            {
                "articles/source_id=a/published_date=2024-12-09",
                "articles/source_id=b/published_date=2024-12-09",
            },
        ),
    ],
)
def test_filters_by_source_and_date(tmp_path: Path, source_id, since, compacted: set[str]) -> None:
    store = open_store(str(tmp_path))
    for run in range(3):
        for source in ("a", "b"):
            poll_once(store, make_rows(source, 2 * (run + 1)).slice(2 * run), f"r{run}{source}")
    done = compact_lake(
        store, "z", target_bytes=1 << 20, row_group_rows=1024, source_id=source_id, since=since
    )
    assert {d.partition for d in done} == compacted
    untouched = set(files_per_partition(store)) - compacted
    assert all(files_per_partition(store)[p] == 3 for p in untouched)
