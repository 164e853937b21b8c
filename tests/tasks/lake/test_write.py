"""Parquet encoding, month partitions and per-file Delta statistics of the write stage."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import FILE_SCHEMA, SCHEMA_VERSION_KEY
from feedlake.tasks.lake.write import file_stats, plan_files
from tests.support.article_rows import make_rows, replace_column


def in_january(rows: pa.Table) -> pa.Table:
    """The same rows, published a month later (2025-01)."""
    days = [d.replace(year=2025, month=1) for d in rows.column("published_at").to_pylist()]
    rows = replace_column(rows, "published_at", days)
    return replace_column(rows, "published_date", [d.date() for d in days])


def test_one_file_per_month_whatever_the_sources_with_deterministic_keys() -> None:
    rows = pa.concat_tables([make_rows("a", 6), make_rows("b", 3), in_january(make_rows("c", 4))])
    files = plan_files(rows, "articles", 1024)
    assert [f.key.rsplit("/", 1)[0] for f in files] == [
        "articles/published_month=2024-12",
        "articles/published_month=2025-01",
    ]
    assert [dict(f.partition) for f in files] == [
        {"published_month": "2024-12"},
        {"published_month": "2025-01"},
    ]
    assert [f.rows for f in files] == [9, 4]
    # Same rows, different run: same keys (so a rerun cannot write the rows twice).
    again = plan_files(
        pa.concat_tables(
            [make_rows("a", 6, run_id="other"), make_rows("b", 3), in_january(make_rows("c", 4))]
        ),
        "articles",
        1024,
    )
    assert [f.key for f in again] == [f.key for f in files]


def test_files_are_sorted_by_source_then_time_zstd_with_every_article_column() -> None:
    rows = pa.concat_tables([make_rows("b", 20), make_rows("a", 20)])
    shuffled = rows.take(pa.array(list(reversed(range(40)))))
    [planned] = plan_files(shuffled, "articles", 1024)
    parquet = pq.ParquetFile(io.BytesIO(planned.data))
    table = parquet.read()
    assert table.schema.remove_metadata() == FILE_SCHEMA.remove_metadata()
    assert table.schema.metadata[SCHEMA_VERSION_KEY] == b"2"
    order = list(
        zip(table.column("source_id").to_pylist(), table.column("published_at").to_pylist(), strict=True)
    )
    assert order == sorted(order)
    column = parquet.metadata.row_group(0).column(0)
    assert column.compression == "ZSTD" and column.statistics is not None


def test_statistics_bound_every_value_with_timestamps_rounded_outwards() -> None:
    rows = make_rows("a", 5)
    times = [datetime(2024, 12, 8, 12, 0, 0, 1500, tzinfo=UTC), *rows.column("published_at").to_pylist()[1:]]
    rows = replace_column(rows, "published_at", times)
    stats = json.loads(file_stats(rows))
    assert stats["numRecords"] == 5
    assert stats["minValues"]["source_id"] == stats["maxValues"]["source_id"] == "a"
    low = pc.min(rows.column("published_at")).as_py()
    high = pc.max(rows.column("published_at")).as_py()
    as_time = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    assert as_time(stats["minValues"]["published_at"]) <= low
    assert as_time(stats["maxValues"]["published_at"]) >= high
    assert stats["minValues"]["published_date"] == date(2024, 12, 8).isoformat()
    assert stats["nullCount"]["article_id"] == 0


def test_long_strings_get_no_bounds() -> None:
    rows = replace_column(make_rows("a", 2), "article_id", ["x" * 100, "y"])
    stats = json.loads(file_stats(rows))
    assert "article_id" not in stats["minValues"] and "article_id" not in stats["maxValues"]


def test_empty_table_plans_nothing() -> None:
    assert plan_files(make_rows("a", 0), "articles", 1024) == []
