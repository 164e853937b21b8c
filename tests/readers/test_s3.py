"""Readers of a lake on S3 (moto's server): deltalake with the store's options, DuckDB with a secret."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
from deltalake import DeltaTable

from tests.readers.built_lake import build_lake
from tests.readers.engines import KEY, arrow_keys, duckdb_keys, duckdb_with_delta


def test_every_reader_reads_the_live_rows_from_s3(s3_lake: str, s3_endpoint: str, tmp_path: Path) -> None:
    lake = build_lake(tmp_path, s3_lake)
    expected = arrow_keys(lake.live_rows())
    assert len(expected) == 102
    options = lake.store.delta_options()
    assert arrow_keys(DeltaTable(lake.uri, storage_options=options).to_pyarrow_table()) == expected
    assert sorted(pl.read_delta(lake.uri, storage_options=options).select(KEY).rows()) == expected
    before = DeltaTable(lake.uri, version=lake.compaction_version - 1, storage_options=options)
    assert arrow_keys(before.to_pyarrow_table()) == expected

    endpoint = urlsplit(s3_endpoint)
    duck = duckdb_with_delta(tmp_path / "duckdb-extensions")
    try:
        duck.execute(
            "CREATE SECRET lake (TYPE s3, KEY_ID $key_id, SECRET $secret, REGION 'us-east-1', "
            "ENDPOINT $endpoint, URL_STYLE 'path', USE_SSL false)",
            {
                "key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
                "endpoint": endpoint.netloc,
            },
        )
        assert duckdb_keys(duck, f"delta_scan('{lake.uri}')") == expected
        december = duckdb_keys(
            duck, f"delta_scan('{lake.uri}')", "published_month = '2024-12' AND source_id = 'b'"
        )
        assert len(december) == 30
    finally:
        duck.close()
