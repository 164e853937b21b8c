"""``import feedlake`` as a library user does: poll and backfill with no Prefect API or flow run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from tests.conftest import CENTCOM_FIXTURE, CORPUS, write_sources
from tests.support.lake_ops import article_keys
from tests.support.paths import CASES

ECONOMIST = "fastfeedparser/960551eca5b5db81.economist-asia.xml"

# Runs in a process of its own, as a user's script would: Prefect must never be imported.
SCRIPT = """
import json, sys
import feedlake
first = feedlake.poll(sys.argv[1], sys.argv[2])
second = feedlake.poll(sys.argv[1], sys.argv[2])
print(json.dumps({
    "first": [first.rows_committed, first.sources_failed, [r.status for r in first.reports]],
    "second": [second.rows_committed, [r.http_status for r in second.reports]],
    "prefect_imported": any(name == "prefect" or name.startswith("prefect.") for name in sys.modules),
}))
"""


def test_poll_from_python_fills_the_lake_without_prefect(tmp_path: Path, snapshot_base_url: str) -> None:
    centcom = f"{snapshot_base_url}/{CENTCOM_FIXTURE.relative_to(CASES).as_posix()}"
    sources = write_sources(
        tmp_path / "sources.yaml",
        [("centcom", centcom), ("economist", f"{snapshot_base_url}/corpus/{ECONOMIST}")],
    )
    lake = tmp_path / "lake"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(sources), str(lake)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows, failed, statuses = result["first"]
    assert failed == 0 and statuses == ["ok", "ok"]
    assert rows > 300, "the Economist feed alone holds 300 items"
    # The second poll asks with the stored validators: every feed answers 304 and nothing is written.
    assert result["second"] == [0, [304, 304]]
    assert result["prefect_imported"] is False
    table = ds.dataset(lake / "articles", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == rows
    assert set(table.column("source_id").to_pylist()) == {"centcom", "economist"}


def test_backfill_from_python_reads_a_folder_of_captures(tmp_path: Path) -> None:
    import feedlake
    from feedlake.tasks.lake.storage import open_store

    folder = tmp_path / "captures"
    folder.mkdir()
    shutil.copy(CORPUS / ECONOMIST, folder / "economist.xml")
    sources = write_sources(
        tmp_path / "sources.yaml", [("economist", "https://www.economist.com/asia/rss.xml")]
    )
    lake = tmp_path / "lake"
    result = feedlake.backfill(sources, lake, "economist", strategy="files", path=folder, workers=1)
    assert (result.captures, result.rows_written, result.rows_quarantined) == (1, 300, 0)
    assert len(article_keys(open_store(str(lake)))) == 300
    again = feedlake.backfill(sources, lake, "economist", strategy="files", path=folder, workers=1)
    # A second backfill of the same history reads it again and adds nothing: every row is a duplicate.
    assert (again.rows_written, again.duplicates) == (0, 300)
    assert len(article_keys(open_store(str(lake)))) == 300
