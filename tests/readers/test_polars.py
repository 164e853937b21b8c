"""polars reads exactly the live rows, with filters pushed down and at older versions."""

from __future__ import annotations

import polars as pl

from tests.readers.built_lake import BuiltLake
from tests.readers.engines import KEY, arrow_keys


def polars_keys(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return sorted(frame.select(KEY).rows())


def test_read_delta_is_exactly_the_live_rows(lake: BuiltLake) -> None:
    expected = lake.live_rows()
    frame = pl.read_delta(lake.uri)
    assert frame.height == expected.num_rows
    assert polars_keys(frame) == arrow_keys(expected)


def test_scan_delta_filters_by_month_and_source(lake: BuiltLake) -> None:
    scanned = (
        pl.scan_delta(lake.uri)
        .filter((pl.col("published_month") == "2024-12") & (pl.col("source_id") == "a"))
        .collect()
    )
    expected = lake.live_rows().to_pylist()
    wanted = sorted(
        (r["article_id"], r["content_hash"])
        for r in expected
        if r["source_id"] == "a" and r["published_date"].strftime("%Y-%m") == "2024-12"
    )
    assert scanned.height == 35 and polars_keys(scanned) == wanted
    titled = pl.scan_delta(lake.uri).filter(pl.col("title") == "t1").collect()
    assert sorted(titled["article_id"].to_list()) == ["a-1", "b-1", "c-1"]


def test_an_older_version_reads_as_it_was(lake: BuiltLake) -> None:
    before = pl.read_delta(lake.uri, version=lake.compaction_version - 1)
    assert polars_keys(before) == polars_keys(pl.read_delta(lake.uri))
    first = pl.read_delta(lake.uri, version=lake.run_versions[0])
    assert set(first["source_id"].to_list()) == {"dustri"} and first.height == 25
