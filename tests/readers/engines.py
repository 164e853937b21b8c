"""The readers under test, each opened the way a user of that engine would open a feedlake table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from duckdb_extensions import import_extension

# The table's row identity: an article version is (article_id, content_hash).
KEY = ("article_id", "content_hash")


def duckdb_with_delta(extension_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the delta and httpfs extensions loaded from their Python packages
    (installed into ``extension_dir``; never downloaded: autoinstall is off)."""
    con = duckdb.connect(
        config={"extension_directory": str(extension_dir), "autoinstall_known_extensions": False}
    )
    for name in ("delta", "httpfs"):
        import_extension(name, con=con)
        con.load_extension(name)
    return con


def arrow_keys(table: pa.Table) -> list[tuple[str, str]]:
    """Every row's (article_id, content_hash), sorted: equal lists mean the same rows, no duplicates."""
    return sorted(zip(*(table.column(name).to_pylist() for name in KEY), strict=True))


def duckdb_keys(con: duckdb.DuckDBPyConnection, source: str, where: str = "true") -> list[tuple[str, str]]:
    """The sorted (article_id, content_hash) of the rows ``source`` (a table function call) returns."""
    return sorted(con.sql(f"SELECT {', '.join(KEY)} FROM {source} WHERE {where}").fetchall())
