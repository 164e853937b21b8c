"""Shared by the reader tests: one built lake (read only) and one DuckDB connection."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.readers.built_lake import BuiltLake, build_lake
from tests.readers.engines import duckdb_with_delta


@pytest.fixture(scope="package")
def lake(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    """The local lake every reader test reads (none writes to it)."""
    return build_lake(tmp_path_factory.mktemp("readers"))


@pytest.fixture(scope="package")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB connection with the delta extension loaded."""
    con = duckdb_with_delta(tmp_path_factory.mktemp("duckdb-extensions"))
    yield con
    con.close()
