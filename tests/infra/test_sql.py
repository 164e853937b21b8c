"""The shipped Spark, Trino and Athena DDL registers the Delta tables and its views match the schema.

No Spark, Trino or Athena runs here: the statements are checked against the schema and the lake's
layout, and the views' queries (plain SQL in all three dialects) are run by DuckDB over a real
lake's Delta table, to show they return the latest version of each article.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from feedlake.schemas.article import ARTICLE_SCHEMA, PARTITION_COLUMN, table_schema
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, VALIDATION_RESULTS
from feedlake.tasks.lake.storage import open_store
from tests.readers.built_lake import edited
from tests.readers.engines import duckdb_with_delta
from tests.support.article_rows import make_rows
from tests.support.lake_ops import poll_once
from tests.support.paths import INFRA

SQL = INFRA / "sql"
ENGINES = ["athena", "spark", "trino"]
# Every article column in schema order, then the partition column.
TABLE_COLUMNS = table_schema(ARTICLE_SCHEMA).names


def ddl(engine: str) -> str:
    """The engine's DDL with its comments dropped."""
    text = (SQL / f"{engine}_articles.sql").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def latest_view(sql: str) -> tuple[str, str]:
    """The latest-version view's name and its query."""
    found = re.search(r"CREATE OR REPLACE VIEW (\S+) AS\n(.*?);", sql, re.S)
    assert found is not None, "no latest-version view"
    return found[1], found[2]


def selected_columns(query: str) -> list[str]:
    """The columns the view's outer SELECT names, in order."""
    outer = query.split("SELECT", 1)[1].split("\nFROM (", 1)[0]
    return [name.strip() for name in outer.split(",")]


@pytest.mark.parametrize("engine", ENGINES)
def test_each_latest_view_names_every_column_in_schema_order(engine: str) -> None:
    name, query = latest_view(ddl(engine))
    assert name.endswith("articles_latest")
    assert selected_columns(query) == TABLE_COLUMNS
    assert "ORDER BY captured_at DESC, fetched_at DESC, run_id DESC" in query


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_registers_every_delta_table_at_its_folder(engine: str) -> None:
    sql = ddl(engine)
    # A Delta table's schema, partitions and files come from its log: nothing of the Hive layout.
    for hive in ("PARTITIONED BY", "projection", "MSCK", "STORED AS", "storage.location.template"):
        assert hive not in sql, hive
    for table in (ARTICLES, QUARANTINE, VALIDATION_RESULTS):
        location = f"YOUR-BUCKET/YOUR-PREFIX/{table}"
        if engine == "athena":
            statement = rf"CREATE EXTERNAL TABLE IF NOT EXISTS \w+\nLOCATION 's3://{location}/'\n"
            statement += r"TBLPROPERTIES \('table_type' = 'DELTA'\);"
        elif engine == "spark":
            statement = rf"CREATE TABLE IF NOT EXISTS \w+\nUSING DELTA\nLOCATION 's3a://{location}';"
        else:
            statement = (
                r"CALL delta\.system\.register_table\(\n  schema_name => 'feedlake',\n"
                rf"  table_name => '\w+',\n  table_location => 's3://{location}'\n\);"
            )
        # Athena refuses a column list for a Delta table; none of them needs one.
        assert re.search(statement, sql), (engine, table)


@pytest.fixture(scope="module")
def versions_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, str]:
    """DuckDB over a lake where five of twelve articles were edited by a later run."""
    root = tmp_path_factory.mktemp("sql")
    store = open_store(str(root / "lake"))
    poll_once(store, make_rows("a", 12, "20261123T000000Z-r1"), "20261123T000000Z-r1")
    poll_once(store, edited(make_rows("a", 5), "20261123T010000Z-r2"), "20261123T010000Z-r2")
    con = duckdb_with_delta(root / "duckdb-extensions")
    return con, f"delta_scan('{store.uri(ARTICLES)}')"


def test_the_tables_columns_are_the_views_columns(
    versions_table: tuple[duckdb.DuckDBPyConnection, str],
) -> None:
    # What the engines read from the Delta log: the article columns, then the partition column.
    con, scan = versions_table
    names = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    assert names == [*ARTICLE_SCHEMA.names, PARTITION_COLUMN] == TABLE_COLUMNS


@pytest.mark.parametrize("engine", ENGINES)
def test_each_latest_view_returns_the_latest_version_of_each_article(
    engine: str, versions_table: tuple[duckdb.DuckDBPyConnection, str]
) -> None:
    con, scan = versions_table
    _, query = latest_view(ddl(engine))
    source = re.search(r"FROM (\S+) a\n", query)
    assert source is not None
    latest: pa.Table = con.sql(query.replace(source[0], f"FROM {scan} a\n")).to_arrow_table()
    assert latest.column_names == TABLE_COLUMNS
    titles = dict(zip(latest["article_id"].to_pylist(), latest["title"].to_pylist(), strict=True))
    assert titles == {f"a-{i}": f"t{i} (edited)" if i < 5 else f"t{i}" for i in range(12)}
    (all_versions,) = con.sql(f"SELECT count(*) FROM {scan}").fetchone() or (0,)
    assert all_versions == 17


def test_the_sql_files_are_the_three_engines() -> None:
    assert sorted(path.name for path in Path(SQL).glob("*.sql")) == [f"{e}_articles.sql" for e in ENGINES]
