"""The shipped Athena/Glue DDL matches the article schema (no engine runs here to execute it)."""

from __future__ import annotations

import re

import pyarrow as pa

from feedlake.schemas.article import FILE_SCHEMA, PARTITION_COLUMNS
from tests.support.paths import REPO

SQL = REPO / "infra" / "sql"
HIVE_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.timestamp("us", tz="UTC"): "timestamp",
    pa.list_(pa.string()): "array<string>",
}


def declared_columns(sql: str) -> dict[str, str]:
    body = sql.split("CREATE EXTERNAL TABLE", 1)[1].split("(", 1)[1].split("\n)\n", 1)[0]
    columns = {}
    for line in body.strip().splitlines():
        name, type_ = line.strip().rstrip(",").split(None, 1)
        columns[name] = type_.strip()
    return columns


def test_athena_columns_match_the_file_schema() -> None:
    sql = (SQL / "athena_articles.sql").read_text()
    columns = declared_columns(sql)
    assert list(columns) == FILE_SCHEMA.names
    for field in FILE_SCHEMA:
        if field.type in HIVE_TYPES:
            assert columns[field.name] == HIVE_TYPES[field.type], field.name
    assert columns["enclosures"] == "array<struct<url:string, type:string, length:bigint>>"


def test_athena_partitions_match_the_lake_layout() -> None:
    sql = (SQL / "athena_articles.sql").read_text()
    partitioned = re.search(r"PARTITIONED BY \((.*?)\)\n", sql)
    assert partitioned is not None
    names = [part.strip().split()[0] for part in partitioned.group(1).split(",")]
    assert tuple(names) == PARTITION_COLUMNS
    assert "source_id=${source_id}/published_date=${published_date}/" in sql
