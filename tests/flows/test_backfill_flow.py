"""`feedlake backfill` end to end: a real Prefect API, a local archive site, Wayback and WARC files."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import httpx
import pyarrow.dataset as ds
import pytest

from feedlake.flows.cli import EXIT_CANNOT_RUN, EXIT_OK, main
from feedlake.tasks.backfill.captures import archive_captures, http_fetcher
from feedlake.tasks.backfill.engine import run_backfill, start_or_resume
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.pipeline.backfill import commit_backfill_batch
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.validate.validator import ArticleValidator
from tests.conftest import write_sources
from tests.support.archive_server import ORIGINAL_URL, serve_archive_site

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


@pytest.fixture(scope="module")
def site():
    with serve_archive_site() as served:
        yield served


def rows(lake: Path) -> int:
    return ds.dataset(lake / "articles", format="parquet", partitioning="hive").count_rows()


def artifacts(key: str) -> list[dict]:
    from prefect.settings import PREFECT_API_URL

    # Plain HTTP: prefect 3.8's client sends nulls for unset paging fields, which this server refuses.
    body = {"artifacts": {"key": {"any_": [key]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_auto_backfill_of_an_archived_feed_then_a_rerun_adds_nothing(tmp_path: Path, site, capsys) -> None:
    base, _ = site
    sources = write_sources(tmp_path / "s.yaml", [("economist", f"{base}/archive/feed.xml")])
    lake = tmp_path / "lake"
    command = ["backfill", "economist", "--sources", str(sources), "--lake", str(lake), "--workers", "2"]
    capsys.readouterr()
    assert main(command) == EXIT_OK
    out = capsys.readouterr().out
    assert "backfill economist (archive): 6 documents" in out and "300 written in all" in out
    assert rows(lake) == 300
    progress = artifacts("feedlake-backfill-progress")
    assert progress and float(progress[0]["data"]) == 100.0
    assert "| rows written | 300 |" in artifacts("feedlake-backfill")[0]["data"]
    assert main(command) == EXIT_OK
    assert "0 written in all" in capsys.readouterr().out and rows(lake) == 300
    # A poll of the live feed afterwards adds nothing either: its 50 items were backfilled.
    assert main(["poll", "--sources", str(sources), "--lake", str(lake)]) == EXIT_OK
    assert rows(lake) == 300


def test_an_interrupted_backfill_says_it_resumes(tmp_path: Path, site, capsys) -> None:
    base, _ = site
    url = f"{base}/archive/feed.xml"
    sources = write_sources(tmp_path / "s.yaml", [("economist", url)])
    lake = tmp_path / "lake"
    store = open_store(str(lake))
    target = Source("economist", url, "economist", "test", "news")
    checkpoint, _ = start_or_resume(store, "economist", "archive")
    calls = []

    def dies_on_second_commit(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return commit_backfill_batch(*args)

    with pytest.raises(KeyboardInterrupt):
        run_backfill(
            store,
            target,
            archive_captures(http_fetcher(FeedlakeSettings(), target), url),
            checkpoint,
            validator=ArticleValidator(),
            commit=dies_on_second_commit,
            lease_seconds=60,
            lease_wait_seconds=5,
            row_group_rows=1024,
            batch_rows=50,
        )
    capsys.readouterr()
    assert main(["backfill", "economist", "--sources", str(sources), "--lake", str(lake)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "resuming the archive backfill of economist from its checkpoint: 1 documents" in captured.err
    assert "(archive, resumed): 5 documents" in captured.out
    assert rows(lake) == 300


def test_wayback_and_warc_files_through_the_cli(tmp_path: Path, site, capsys, monkeypatch) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    base, served = site
    monkeypatch.setenv("FEEDLAKE_WAYBACK_URL", f"{base}/wb")
    sources = write_sources(tmp_path / "s.yaml", [("economist", ORIGINAL_URL)])
    lake = tmp_path / "lake"
    capsys.readouterr()
    command = [
        "backfill",
        "economist",
        "--sources",
        str(sources),
        "--lake",
        str(lake),
        "--strategy",
        "wayback",
    ]
    assert main([*command, "--since", "2025-10-01"]) == EXIT_OK
    assert "(wayback): 3 documents" in capsys.readouterr().out
    partial = rows(lake)
    assert main(command) == EXIT_OK
    assert "(wayback): 8 documents" in capsys.readouterr().out and rows(lake) == 300 > partial
    warcs = tmp_path / "warcs"
    warcs.mkdir()
    with (warcs / "feeds.warc.gz").open("wb") as stream:
        writer = WARCWriter(stream, gzip=True)
        for stamp, body in sorted(served.snapshots.items()):
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "application/rss+xml")], protocol="HTTP/1.1"
            )
            iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T00:00:00Z"
            record = writer.create_warc_record(
                ORIGINAL_URL,
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=headers,
                warc_headers_dict={"WARC-Date": iso},
            )
            writer.write_record(record)
    other = tmp_path / "other-lake"
    files = ["backfill", "economist", "--sources", str(sources), "--lake", str(other), "--path", str(warcs)]
    assert main(files) == EXIT_OK
    assert "(files): 8 documents" in capsys.readouterr().out and rows(other) == 300
    table = ds.dataset(other / "articles", format="parquet", partitioning="hive").to_table()
    assert set(table.column("capture_source").to_pylist()) == {"file"}
    checkpoint = json.loads((other / "_state" / "backfill" / "economist.json").read_text())
    assert checkpoint["finished"] and checkpoint["strategy"] == "files"


def test_backfill_on_a_local_dask_cluster_gives_the_same_rows(tmp_path: Path, site, capsys) -> None:
    base, _ = site
    sources = write_sources(tmp_path / "s.yaml", [("economist", f"{base}/archive/feed.xml")])
    lake = tmp_path / "lake"
    command = ["backfill", "economist", "--sources", str(sources), "--lake", str(lake), "--workers", "2"]
    capsys.readouterr()
    assert main([*command, "--dask", "local"]) == EXIT_OK
    assert "(archive): 6 documents" in capsys.readouterr().out and rows(lake) == 300
    from prefect.settings import PREFECT_API_URL

    body = {
        "task_runs": {"name": {"like_": "normalize-document"}},
        "limit": 200,
        "offset": 0,
        "sort": "ID_DESC",
    }
    response = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/filter", json=body, timeout=30)
    response.raise_for_status()
    # One task per document, run by the Dask cluster's worker processes.
    assert sum(r["state_type"] == "COMPLETED" for r in response.json()) >= 6


def test_dask_without_its_extra_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    # As on an install without `feedlake[dask]`: the import of prefect_dask fails.
    monkeypatch.setitem(sys.modules, "prefect_dask", None)
    monkeypatch.setitem(sys.modules, "prefect_dask.task_runners", None)
    command = ["backfill", "any-source", "--lake", str(tmp_path / "lake"), "--dask", "local"]
    assert main(command) == EXIT_CANNOT_RUN
    assert "pip install 'feedlake[dask]'" in capsys.readouterr().err
