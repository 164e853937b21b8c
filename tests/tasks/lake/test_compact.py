"""Compaction: many small files per month partition become a few in one new table version, every
row stays identical, the old version stays readable until vacuum, and a crash at any point leaves
each row exactly once with no file the logs cannot account for."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from feedlake.schemas.article import PARTITION_COLUMN
from feedlake.tasks.lake.changes import read_changes
from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.compact import compact_lake, vacuum_lake
from feedlake.tasks.lake.delta_table import KIND_KEY, RUN_ID_KEY, commit_history, live_files
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.quarantine import QUARANTINE_SCHEMA
from tests.support.article_rows import make_rows, replace_column
from tests.support.crash_store import CrashingStore, Killed

TABLES = (ARTICLES, QUARANTINE)
BIG = 128 << 20


@pytest.fixture(params=["local", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")


def rows_in_months(source_id: str, n: int, months: tuple[int, ...], start: int = 0) -> pa.Table:
    """Rows ``start``..``n - 1`` of a source, the i-th published in 2024-``months[i % len(months)]``."""
    rows = make_rows(source_id, n).slice(start)
    published = [
        datetime(2024, months[i % len(months)], 8 + i % 20, 12, i % 60, tzinfo=UTC) for i in range(start, n)
    ]
    rows = replace_column(rows, "published_at", published)
    return replace_column(rows, "published_date", [p.date() for p in published])


def held(rows: pa.Table) -> pa.Table:
    """``rows`` as quarantined rows (failing one made-up expectation at validation)."""
    failed = pa.array([["expect_something"]] * rows.num_rows, pa.list_(pa.string()))
    rows = rows.append_column("failed_expectations", failed)
    return rows.append_column("stage", pa.array(["validate"] * rows.num_rows)).cast(QUARANTINE_SCHEMA)


def commit(store: ObjectStore, run_id: str, accepted: pa.Table, quarantined: pa.Table | None = None) -> None:
    """A poll's commit: accepted rows to articles, quarantined ones to quarantine."""
    quarantined = held(accepted.slice(0, 0)) if quarantined is None else quarantined
    files = plan_run_files(accepted, quarantined, 1024)
    commit_run(store, run_id, files, run_keys(accepted, quarantined), {})


def table_rows(store: ObjectStore, table: str, version: int | None = None) -> pa.Table:
    """Every row of a table version, as any Delta reader sees it, in a stable order."""
    delta = DeltaTable(store.uri(table), version=version, storage_options=store.delta_options())
    order = [(c, "ascending") for c in ("source_id", "article_id", "content_hash")]
    return delta.to_pyarrow_table().sort_by(order)


def table_version(store: ObjectStore, table: str) -> int:
    return DeltaTable(store.uri(table), storage_options=store.delta_options()).version()


def data_files(store: ObjectStore, table: str) -> set[str]:
    """Every data file under a table's folder, named by its log or not."""
    return {key for key in store.list(f"{table}/") if "/_delta_log/" not in key}


def files_per_partition(store: ObjectStore, table: str = ARTICLES) -> dict[str, int]:
    return dict(Counter(str(f.partition[PARTITION_COLUMN]) for f in live_files(store, table)))


def live_keys(store: ObjectStore, table: str) -> set[str]:
    return {f.key for f in live_files(store, table)}


def test_two_hundred_polls_compact_to_one_file_per_partition(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    for run in range(200):
        # Each poll brings two new articles of each of two sources, one a month: 200 tiny files in
        # each month partition, each holding both sources.
        rows = [rows_in_months(s, 2 * (run + 1), (11, 12), start=2 * run) for s in ("a", "b")]
        commit(store, f"r{run:03d}", pa.concat_tables(rows))
    before = table_rows(store, ARTICLES)
    version = table_version(store, ARTICLES)
    old = live_keys(store, ARTICLES)
    assert files_per_partition(store) == {"2024-11": 200, "2024-12": 200}

    done = compact_lake(store, "z", target_bytes=BIG, row_group_rows=64 * 1024)

    assert sorted((d.partition, d.files_before, d.files_after, d.rows) for d in done) == [
        (f"{ARTICLES}/{PARTITION_COLUMN}=2024-11", 200, 1, 400),
        (f"{ARTICLES}/{PARTITION_COLUMN}=2024-12", 200, 1, 400),
    ]
    assert files_per_partition(store) == {"2024-11": 1, "2024-12": 1}
    assert table_rows(store, ARTICLES).equals(before), "the same rows, each once"
    # One new version, a rewrite: change-data-feed readers see no change.
    assert table_version(store, ARTICLES) == version + 1
    latest = commit_history(store, ARTICLES, 1)[0]
    assert (latest[KIND_KEY], latest[RUN_ID_KEY]) == ("compact", "z")
    assert read_changes(store, version, ARTICLES).rows.num_rows == 0
    # Each new file holds both sources, clustered by source and time (what readers prune on).
    order = [(c, "ascending") for c in ("source_id", "published_at", "article_id")]
    for compacted in live_files(store, ARTICLES):
        rows = pq.read_table(io.BytesIO(store.get(compacted.key) or b""))
        assert set(rows.column("source_id").to_pylist()) == {"a", "b"}
        assert rows.num_rows == compacted.rows == 400
        assert rows.column("article_id").equals(rows.sort_by(order).column("article_id"))
    # The replaced files stay, tombstoned: the previous version reads the same rows.
    assert data_files(store, ARTICLES) == old | live_keys(store, ARTICLES)
    assert table_rows(store, ARTICLES, version).equals(before)
    # Vacuum deletes exactly the replaced files (a dry run only names them); the latest still reads.
    assert vacuum_lake(store, retention_hours=0, dry_run=True) == sorted(old)
    assert data_files(store, ARTICLES) == old | live_keys(store, ARTICLES)
    assert vacuum_lake(store, retention_hours=0) == sorted(old)
    assert data_files(store, ARTICLES) == live_keys(store, ARTICLES)
    assert table_rows(store, ARTICLES).equals(before)
    # Compacting again finds nothing to do, and makes no version (vacuum made its own).
    version = table_version(store, ARTICLES)
    assert compact_lake(store, "zz", target_bytes=BIG, row_group_rows=64 * 1024) == []
    assert table_version(store, ARTICLES) == version


def test_target_size_splits_large_partitions(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    for run in range(20):
        commit(store, f"r{run:03d}", make_rows("a", 400 * (run + 1)).slice(400 * run))
    before = table_rows(store, ARTICLES)
    total = sum(f.size for f in live_files(store, ARTICLES))
    # One month partition of 20 files: a quarter of its bytes makes about four files.
    done = compact_lake(store, "z", target_bytes=total // 4, row_group_rows=1024)
    assert [(d.files_before, d.rows) for d in done] == [(20, 8000)]
    assert 2 <= done[0].files_after <= 6, done
    compacted = live_files(store, ARTICLES)
    assert len(compacted) == done[0].files_after
    assert all(f.size <= total // 4 for f in compacted), compacted
    assert table_rows(store, ARTICLES).equals(before)


@pytest.mark.parametrize(
    ("since", "compacted"),
    [
        (None, {"2024-10", "2024-11", "2024-12"}),
        # From the month of ``since`` on: a partition is a month, compacted whole or not at all.
        (date(2024, 11, 15), {"2024-11", "2024-12"}),
        (date(2025, 1, 1), set()),
    ],
)
def test_since_compacts_only_the_months_from_that_date_on(
    tmp_path: Path, since: date | None, compacted: set[str]
) -> None:
    store = open_store(str(tmp_path / "lake"))
    for run in range(3):
        rows = [rows_in_months(s, 6 * (run + 1), (10, 11, 12), start=6 * run) for s in ("a", "b")]
        commit(store, f"r{run}", pa.concat_tables(rows))
    before = table_rows(store, ARTICLES)
    version = table_version(store, ARTICLES)
    done = compact_lake(store, "z", target_bytes=1 << 20, row_group_rows=1024, since=since)
    assert {d.partition for d in done} == {f"{ARTICLES}/{PARTITION_COLUMN}={m}" for m in compacted}
    assert files_per_partition(store) == {
        m: 1 if m in compacted else 3 for m in ("2024-10", "2024-11", "2024-12")
    }
    assert table_rows(store, ARTICLES).equals(before)
    assert table_version(store, ARTICLES) == version + (1 if compacted else 0)


def test_quarantine_partitions_are_compacted_too_in_the_same_run(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    for run in range(4):
        rows = rows_in_months("a", 8 * (run + 1), (11, 12), start=8 * run)
        commit(store, f"r{run}", rows.slice(0, 5), held(rows.slice(5)))
    before = {table: table_rows(store, table) for table in TABLES}
    versions = {table: table_version(store, table) for table in TABLES}
    done = compact_lake(store, "z", target_bytes=BIG, row_group_rows=1024)
    assert sorted(d.partition for d in done) == sorted(
        f"{table}/{PARTITION_COLUMN}={month}" for table in TABLES for month in ("2024-11", "2024-12")
    )
    for table in TABLES:
        assert files_per_partition(store, table) == {"2024-11": 1, "2024-12": 1}, table
        assert table_rows(store, table).equals(before[table]), table
        assert table_version(store, table) == versions[table] + 1, table
        latest = commit_history(store, table, 1)[0]
        assert (latest[KIND_KEY], latest[RUN_ID_KEY]) == ("compact", "z")
        assert table_rows(store, table, versions[table]).equals(before[table])


def seed_for_crashes(store: ObjectStore) -> None:
    """Four polls: both tables get two month partitions of four files each."""
    for run in range(4):
        rows = [rows_in_months(s, 6 * (run + 1), (11, 12), start=6 * run) for s in ("a", "b")]
        accepted = pa.concat_tables([r.slice(0, 4) for r in rows])
        commit(store, f"r{run}", accepted, held(pa.concat_tables([r.slice(4) for r in rows])))


def kill_before_commit_to(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the process as it is about to make its Delta commit to ``table`` (not a store write)."""
    import feedlake.tasks.lake.commit as commit_module

    real = commit_module.commit_files

    def commit_files(store: ObjectStore, to: str, *args: Any, **kwargs: Any) -> int | None:
        if to == table:
            raise Killed(f"killed before the commit to {table}")
        return real(store, to, *args, **kwargs)

    monkeypatch.setattr(commit_module, "commit_files", commit_files)


def test_kill_at_every_step_of_a_compaction(
    lake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = open_store(str(tmp_path / "clean"))
    seed_for_crashes(clean)
    expected = {table: table_rows(clean, table) for table in TABLES}
    probe = CrashingStore(open_store(str(tmp_path / "probe")))
    seed_for_crashes(probe)
    before = probe.writes
    compact_lake(probe, "z1", target_bytes=BIG, row_group_rows=1024)
    writes = probe.writes - before
    assert writes >= 6  # the intent, four new files, the intent's removal
    # Every store write, then each Delta commit (delta-rs writes those itself).
    crash_points: list[int | str] = [*range(writes), QUARANTINE, ARTICLES]
    for crash_at in crash_points:
        lake = open_store(f"{lake_url}/compact-{crash_at}")
        seed_for_crashes(lake)
        before_compaction = {table: live_keys(lake, table) for table in TABLES}
        with monkeypatch.context() as patch:
            if isinstance(crash_at, str):
                kill_before_commit_to(crash_at, patch)
            crashing = CrashingStore(lake, crash_at if isinstance(crash_at, int) else None)
            with pytest.raises(Killed):
                compact_lake(crashing, "z1", target_bytes=BIG, row_group_rows=1024)
        recover_lake(lake)
        for table in TABLES:
            # Rolled back or forward, readers see every row exactly once.
            assert table_rows(lake, table).equals(expected[table]), f"{table}, crash at {crash_at}"
            live = live_keys(lake, table)
            assert live <= data_files(lake, table), f"{table}: a live file is missing, crash at {crash_at}"
            unaccounted = data_files(lake, table) - live - before_compaction[table]
            assert unaccounted == set(), f"{table}: files no version names, crash at {crash_at}"
        assert lake.list("_txn/") == []
        compact_lake(lake, "z2", target_bytes=BIG, row_group_rows=1024)
        vacuum_lake(lake, retention_hours=0)
        for table in TABLES:
            assert table_rows(lake, table).equals(expected[table]), f"{table}, crash at {crash_at}"
            assert files_per_partition(lake, table) == {"2024-11": 1, "2024-12": 1}
            assert data_files(lake, table) == live_keys(lake, table), f"{table}, crash at {crash_at}"


def test_the_validation_results_table_is_compacted_too(tmp_path: Path) -> None:
    """A run adds one small file of validation results: compaction merges a month's into one."""
    from feedlake.tasks.lake.layout import VALIDATION_RESULTS
    from feedlake.tasks.quality.results_table import validation_rows

    store = open_store(str(tmp_path / "lake"))
    for run in range(6):
        rows = rows_in_months("a", 3 * (run + 1), (12,), start=3 * run)
        document = {
            "run_id": f"r{run}",
            "kind": "poll",
            "suite": "articles",
            "validated_at": f"2026-11-{20 + run}T12:00:00+00:00",
            "sources": [
                {
                    "source_id": "a",
                    "checked": 3,
                    "passed": 3,
                    "warned": 0,
                    "rejected": 0,
                    "failed": [],
                    "flags": [],
                }
            ],
        }
        files = plan_run_files(rows, held(rows.slice(0, 0)), 1024)
        commit_run(store, f"r{run}", files, run_keys(rows), {}, validation=validation_rows(document))
    path = str(tmp_path / "lake" / VALIDATION_RESULTS)
    before = DeltaTable(path).to_pyarrow_table().sort_by("run_id")
    assert len(live_files(store, VALIDATION_RESULTS)) == 6
    done = compact_lake(store, "z", target_bytes=BIG, row_group_rows=1024)
    assert f"{VALIDATION_RESULTS}/validated_month=2026-11" in {d.partition for d in done}
    assert len(live_files(store, VALIDATION_RESULTS)) == 1
    assert DeltaTable(path).to_pyarrow_table().sort_by("run_id").equals(before)
