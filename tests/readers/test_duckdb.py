"""DuckDB's delta_scan reads exactly the live rows; a glob over the folder does not."""

from __future__ import annotations

import re

import duckdb

from tests.readers.built_lake import BuiltLake
from tests.readers.engines import arrow_keys, duckdb_keys


def test_delta_scan_is_exactly_the_live_rows(lake: BuiltLake, duck: duckdb.DuckDBPyConnection) -> None:
    expected = lake.live_rows()
    scan = f"delta_scan('{lake.uri}')"
    assert duck.sql(f"SELECT count(*) FROM {scan}").fetchone() == (expected.num_rows,)
    assert duckdb_keys(duck, scan) == arrow_keys(expected)
    zone = duck.sql(f"SELECT DISTINCT typeof(published_at), typeof(published_month) FROM {scan}").fetchall()
    assert zone == [("TIMESTAMP WITH TIME ZONE", "VARCHAR")]


def test_delta_scan_filters_by_month_source_and_time(
    lake: BuiltLake, duck: duckdb.DuckDBPyConnection
) -> None:
    scan = f"delta_scan('{lake.uri}')"
    live = lake.live_rows().to_pylist()
    in_december_from_a = duckdb_keys(duck, scan, "published_month = '2024-12' AND source_id = 'a'")
    assert in_december_from_a == sorted(
        (r["article_id"], r["content_hash"])
        for r in live
        if r["source_id"] == "a" and r["published_date"].strftime("%Y-%m") == "2024-12"
    )
    assert len(in_december_from_a) == 35
    january = duck.sql(
        f"SELECT DISTINCT source_id FROM {scan} WHERE published_at >= TIMESTAMPTZ '2025-01-01 00:00:00+00'"
    ).fetchall()
    assert january == [("c",)]
    latest = duck.sql(
        f"SELECT title FROM {scan} WHERE article_id = 'a-0' ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert latest == ("t0 (edited)",)


def test_a_source_or_a_month_prunes_files(lake: BuiltLake, duck: duckdb.DuckDBPyConnection) -> None:
    def files_scanned(where: str) -> tuple[int, int]:
        plan = duck.sql(f"EXPLAIN ANALYZE SELECT count(*) FROM delta_scan('{lake.uri}') WHERE {where}")
        found = re.search(r"Scanning Files: (\d+)/(\d+)", plan.fetchall()[0][1])
        assert found is not None
        return int(found[1]), int(found[2])

    # Ten live files: eight months of dustri, the compacted 2024-12 file, 2025-01.
    assert files_scanned("source_id = 'a'") == (1, 10)  # by the files' source_id statistics
    assert files_scanned("published_month = '2023-09'") == (1, 10)  # by partition
    assert files_scanned("published_date BETWEEN DATE '2024-12-01' AND DATE '2025-01-31'") == (2, 10)


def test_time_travel(lake: BuiltLake, duck: duckdb.DuckDBPyConnection) -> None:
    before = f"delta_scan('{lake.uri}', version => {lake.compaction_version - 1})"
    assert duckdb_keys(duck, before) == duckdb_keys(duck, f"delta_scan('{lake.uri}')")
    first = f"delta_scan('{lake.uri}', version => {lake.run_versions[0]})"
    assert duck.sql(f"SELECT DISTINCT source_id, count(*) FROM {first} GROUP BY ALL").fetchall() == [
        ("dustri", 25)
    ]


def test_a_glob_over_the_folder_counts_the_files_compaction_replaced(
    lake: BuiltLake, duck: duckdb.DuckDBPyConnection
) -> None:
    # Why readers go through the Delta log: read_parquet sees every file on disk, including those
    # compaction replaced (kept until vacuum for readers of older versions).
    live = lake.live_rows().num_rows
    (globbed,) = duck.sql(f"SELECT count(*) FROM read_parquet('{lake.uri}/*/*.parquet')").fetchone()
    assert globbed == live + 65  # the 2024-12 partition's rows, twice
