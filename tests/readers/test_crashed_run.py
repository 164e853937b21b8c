"""A run killed at any write leaves every reader with exactly the rows of the committed runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.lake.delta_table import live_files, read_rows
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import ObjectStore, open_store
from tests.readers.built_lake import in_january
from tests.readers.engines import KEY, arrow_keys, duckdb_keys
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import physical_files, poll_once

CRASHED_RUN = "20261123T020000Z-crash"


def reader_keys(store: ObjectStore, duck: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """What each reader returns as the table's rows."""
    uri = store.uri(ARTICLES)
    table = DeltaTable(uri)
    return {
        "feedlake": arrow_keys(read_rows(store, ARTICLES, ARTICLE_SCHEMA)),
        "deltalake": arrow_keys(table.to_pyarrow_table()),
        "pyarrow dataset": arrow_keys(table.to_pyarrow_dataset().to_table(columns=list(KEY))),
        "polars": sorted(pl.read_delta(uri).select(KEY).rows()),
        "duckdb": duckdb_keys(duck, f"delta_scan('{uri}')"),
    }


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with two committed runs, copied for each crash."""
    root = tmp_path_factory.mktemp("crash-base") / "lake"
    store = open_store(str(root))
    poll_once(store, make_rows("a", 20, "20261123T000000Z-r1"), "20261123T000000Z-r1")
    poll_once(store, make_rows("b", 20, "20261123T010000Z-r2"), "20261123T010000Z-r2")
    return root


def crashed_rows() -> pa.Table:
    """The rows of the run that is killed: a new source in a month with files, and one in a new month."""
    return pa.concat_tables([make_rows("c", 15, CRASHED_RUN), in_january(make_rows("d", 5, CRASHED_RUN))])


def test_no_reader_ever_sees_a_killed_runs_uncommitted_files(
    base_lake: Path, tmp_path: Path, duck: duckdb.DuckDBPyConnection
) -> None:
    committed = arrow_keys(read_rows(open_store(str(base_lake)), ARTICLES, ARTICLE_SCHEMA))
    with_run = sorted(committed + arrow_keys(crashed_rows()))
    probe = CrashingStore(open_store(str(shutil.copytree(base_lake, tmp_path / "probe"))))
    poll_once(probe, crashed_rows(), CRASHED_RUN)
    writes = probe.writes
    assert writes >= 5
    outcomes = []
    for crash_at in range(writes):
        root = shutil.copytree(base_lake, tmp_path / f"crash-{crash_at}")
        store = CrashingStore(open_store(str(root)), crash_at)
        with pytest.raises(Killed):
            poll_once(store, crashed_rows(), CRASHED_RUN)
        seen = reader_keys(store.inner, duck)
        # Every reader agrees, and sees either the committed runs or those plus the whole run.
        assert all(keys == seen["feedlake"] for keys in seen.values()), (
            crash_at,
            {k: len(v) for k, v in seen.items()},
        )
        assert seen["feedlake"] in (committed, with_run), crash_at
        stray = set(physical_files(store.inner)) - {f.key for f in live_files(store.inner, ARTICLES)}
        outcomes.append((seen["feedlake"] == with_run, bool(stray)))
        # The next run recovers the lake: the readers' answer does not change.
        poll_once(store.inner, make_rows("e", 1, "20261123T030000Z-next"), "20261123T030000Z-next")
        after = reader_keys(store.inner, duck)
        assert after["duckdb"] == sorted(seen["feedlake"] + arrow_keys(make_rows("e", 1))), crash_at
    # Some kills came before the commit point with the run's data files already on disk (which
    # a glob over the folder would read), and some after it.
    assert (False, True) in outcomes and any(landed for landed, _ in outcomes)
