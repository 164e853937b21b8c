"""`feedlake compact`, `files` and `vacuum` through the real flow, on a folder and on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.flows.cli import EXIT_OK, main
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import open_store
from tests.support.article_rows import make_rows
from tests.support.lake_ops import article_keys, physical_files, poll_once

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_compact_command_merges_files_and_keeps_rows(tmp_path: Path, kind: str, request, capsys) -> None:
    lake = str(tmp_path / "lake") if kind == "local" else request.getfixturevalue("s3_lake")
    store = open_store(lake)
    for run in range(30):
        poll_once(store, make_rows("a", 4 * (run + 1)).slice(4 * run), f"20240101T0000{run:02d}Z-x")
    before = article_keys(store)
    assert len(physical_files(store)) == 30  # one month partition: one file per poll
    assert main(["compact", "--lake", lake]) == EXIT_OK
    out = capsys.readouterr().out
    assert "30 files -> 1" in out and "compacted 1 partitions" in out
    # The replaced files stay for readers of older versions until a vacuum past the window.
    assert len(live_files(store, ARTICLES)) == 1 and len(physical_files(store)) == 31
    assert article_keys(store) == before
    assert main(["files", "--lake", lake]) == EXIT_OK
    listed = capsys.readouterr().out.split()
    assert listed == [store.uri(f.key) for f in live_files(store, ARTICLES)]
    assert len(listed) == 1
    assert main(["vacuum", "--lake", lake, "--retention-hours", "0"]) == EXIT_OK
    assert "deleted 30 files" in capsys.readouterr().out
    assert physical_files(store) == [f.key for f in live_files(store, ARTICLES)]
    assert article_keys(store) == before
