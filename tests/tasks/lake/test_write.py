"""Parquet encoding and Hive partitioning of the write stage."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.schemas.article import FILE_SCHEMA, SCHEMA_VERSION_KEY
from feedlake.tasks.lake.write import plan_files
from tests.support.article_rows import make_rows


def test_one_file_per_source_and_day_with_deterministic_keys() -> None:
    rows = pa.concat_tables([make_rows("a", 6), make_rows("b", 3)])
    files = plan_files(rows, "articles", 1024)
    partitions = sorted(f.key.rsplit("/", 1)[0] for f in files)
    assert partitions == [
        "articles/source_id=a/published_date=2024-12-08",
        "articles/source_id=a/published_date=2024-12-09",
        "articles/source_id=b/published_date=2024-12-08",
        "articles/source_id=b/published_date=2024-12-09",
    ]
    assert sum(f.rows for f in files) == 9
    # Same rows, different run: same keys (so a rerun cannot write the rows twice).
    again = plan_files(
        pa.concat_tables([make_rows("a", 6, run_id="other"), make_rows("b", 3)]), "articles", 1024
    )
    assert [f.key for f in again] == [f.key for f in files]


def test_files_are_sorted_zstd_with_schema_version_and_no_partition_columns() -> None:
    rows = make_rows("a", 40)
    shuffled = rows.take(pa.array(list(reversed(range(40)))))
    for planned in plan_files(shuffled, "articles", 1024):
        parquet = pq.ParquetFile(io.BytesIO(planned.data))
        table = parquet.read()
        assert table.schema.remove_metadata() == FILE_SCHEMA.remove_metadata()
        assert table.schema.metadata[SCHEMA_VERSION_KEY] == b"2"
        times = table.column("published_at").to_pylist()
        assert times == sorted(times)
        column = parquet.metadata.row_group(0).column(0)
        assert column.compression == "ZSTD" and column.statistics is not None


def test_empty_table_plans_nothing() -> None:
    assert plan_files(make_rows("a", 0), "articles", 1024) == []
