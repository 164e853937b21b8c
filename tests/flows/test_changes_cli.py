"""``feedlake changes``: the rows a table's versions after N changed, printed and written to Parquet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feedlake.tasks.lake.storage import open_store
from tests.support.article_rows import make_rows
from tests.support.lake_ops import poll_once

FEEDLAKE = str(Path(sys.executable).with_name("feedlake"))
RUNS = ["20261123T010000Z-r1", "20261123T020000Z-r2", "20261123T030000Z-r3"]


def feedlake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEEDLAKE, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake after three runs (table versions 1, 2 and 3) of 4, 5 and 6 rows."""
    root = tmp_path_factory.mktemp("changes") / "lake"
    store = open_store(str(root))
    for n, run_id in enumerate(RUNS, start=4):
        poll_once(store, make_rows(f"s{n}", n, run_id), run_id)
    return root


def test_changes_since_a_version_are_printed_and_written(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "changes.parquet"
    done = feedlake("changes", "--lake", str(lake), "--since-version", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{lake.resolve()}/articles: versions 2..3: 11 insert",
        f"wrote 11 rows to {out}",
    ]
    assert "next time: --since-version 3" in done.stderr
    rows = pq.read_table(out)
    assert sorted(rows["article_id"].to_pylist()) == sorted(
        [f"s5-{i}" for i in range(5)] + [f"s6-{i}" for i in range(6)]
    )
    assert set(rows["run_id"].to_pylist()) == set(RUNS[1:])
    assert set(rows["_change_type"].to_pylist()) == {"insert"}
    assert sorted(set(rows["_commit_version"].to_pylist())) == [2, 3]
    assert rows.num_rows == len(
        set(zip(rows["article_id"].to_pylist(), rows["content_hash"].to_pylist(), strict=True))
    )


def test_from_the_start_and_from_the_latest_version(lake: Path, tmp_path: Path) -> None:
    everything = feedlake("changes", "--lake", str(lake), "--since-version", "-1")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.strip() == f"{lake.resolve()}/articles: versions 0..3: 15 insert"
    out = tmp_path / "none.parquet"
    nothing = feedlake("changes", "--lake", str(lake), "--since-version", "3", "--out", str(out))
    assert nothing.returncode == 0, nothing.stderr
    first, wrote = nothing.stdout.splitlines()
    assert first.startswith(f"{lake.resolve()}/articles: ") and first.endswith(": no changed rows")
    assert wrote == f"wrote 0 rows to {out}"
    assert "next time: --since-version 3" in nothing.stderr
    assert pq.read_table(out).num_rows == 0


def test_an_empty_read_writes_the_same_columns_as_any_other(lake: Path, tmp_path: Path) -> None:
    # A consumer appends each read's file to what it has: the columns must not depend on the rows.
    some, none = tmp_path / "some.parquet", tmp_path / "none.parquet"
    assert (
        feedlake("changes", "--lake", str(lake), "--since-version", "2", "--out", str(some)).returncode == 0
    )
    assert (
        feedlake("changes", "--lake", str(lake), "--since-version", "3", "--out", str(none)).returncode == 0
    )
    assert pq.read_schema(none).remove_metadata() == pq.read_schema(some).remove_metadata()


def test_a_lake_without_tables_cannot_run(tmp_path: Path) -> None:
    done = feedlake("changes", "--lake", str(tmp_path / "empty"), "--since-version", "0")
    assert done.returncode == 2
    assert "not a Delta table" in done.stderr and "feedlake migrate" in done.stderr
    assert "Traceback" not in done.stderr
