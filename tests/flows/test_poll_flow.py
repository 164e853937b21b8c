"""The poll flow end to end: the whole captured corpus over real HTTP, a real Prefect API, a lake."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from feedlake.schemas.article import SCHEMA_VERSION, SCHEMA_VERSION_KEY
from tests.conftest import CorpusFile, write_sources
from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, manifest: list[CorpusFile], snapshot_base_url: str):
    """Poll every corpus file (plus the CENTCOM fixture) three times into one lake."""
    from feedlake.flows.poll import poll_flow

    root = tmp_path_factory.mktemp("corpus-run")
    entries = [(f.source_id, f"{snapshot_base_url}/corpus/{f.path}") for f in manifest]
    entries.append(("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml"))
    sources = write_sources(root / "sources.yaml", entries)
    lake = root / "lake"
    first = poll_flow(sources=str(sources), lake=str(lake))
    second = poll_flow(sources=str(sources), lake=str(lake))
    # Forget the ETags: every feed is downloaded again and must dedup against the seen index.
    for state in (lake / "_state" / "feeds").iterdir():
        state.unlink()
    third = poll_flow(sources=str(sources), lake=str(lake))
    return lake, first, second, third


def read_lake(lake: Path) -> pa.Table:
    """The article table as a data-lake reader sees it (hive partitions)."""
    return ds.dataset(lake / "articles", format="parquet", partitioning="hive").to_table()


def test_first_poll_commits_every_readable_entry(corpus_run, manifest: list[CorpusFile]) -> None:
    lake, first, _, _ = corpus_run
    reports = {r.source_id: r for r in first.reports}
    assert len(reports) == len(manifest) + 1
    for report in reports.values():
        # Every fetched row ends up new, duplicate (repeated guid in one feed) or rejected.
        assert report.fetched == report.new + report.duplicate + report.rejected, report
    ok = [r for r in reports.values() if r.status == "ok"]
    assert len(ok) >= len(manifest) - 10
    stated = sum(f.items or 0 for f in manifest)
    assert sum(r.fetched for r in reports.values()) >= 0.95 * stated
    assert first.rows_committed == sum(r.new for r in reports.values())
    assert read_lake(lake).num_rows == first.rows_committed


def test_broken_sources_are_reported_with_reasons(corpus_run) -> None:
    _, first, _, _ = corpus_run
    failed = {r.source_id: r for r in first.reports if r.status == "error"}
    html_pages = [s for s in failed if "joomlapoweredsite" in s or "titleunknown" in s]
    assert len(html_pages) == 2
    for source_id in html_pages:
        assert "HTML page" in (failed[source_id].error or "")
    assert "RSS-in-JSON" in (failed["rsparser-scriptingnews-json"].error or "")
    for report in failed.values():
        assert report.error and report.error_kind in {"parse", "fetch", "quality"}, report


def test_lake_reads_back_with_schema_and_utc_microseconds(corpus_run) -> None:
    lake, first, _, _ = corpus_run
    table = read_lake(lake)
    assert table.schema.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("fetched_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("article_id").null_count == 0
    # One row per version: (article_id, content_hash) is unique; an edited entry is a second version.
    ids, hashes = table.column("article_id").to_pylist(), table.column("content_hash").to_pylist()
    versions = set(zip(ids, hashes, strict=True))
    assert len(versions) == table.num_rows
    one_file = next((lake / "articles").rglob("*.parquet"))
    metadata = pq.read_schema(one_file).metadata
    assert metadata[SCHEMA_VERSION_KEY] == SCHEMA_VERSION.encode()
    codecs = {pq.ParquetFile(one_file).metadata.row_group(0).column(i).compression for i in range(3)}
    assert codecs == {"ZSTD"}


def test_duckdb_reads_the_lake(corpus_run) -> None:
    lake, first, _, _ = corpus_run
    pattern = f"{lake}/articles/**/*.parquet"
    rows, ids, tz_type = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (article_id, content_hash)), any_value(typeof(published_at)) "
        f"FROM read_parquet('{pattern}', hive_partitioning = true)"
    ).fetchall()[0]
    assert rows == ids == first.rows_committed
    assert tz_type == "TIMESTAMP WITH TIME ZONE"
    centcom = duckdb.sql(
        f"SELECT published_date, published_at, content_text FROM read_parquet('{pattern}', "
        "hive_partitioning = true) WHERE source_id = 'centcom' ORDER BY published_at DESC LIMIT 1"
    ).fetchall()[0]
    assert str(centcom[0]) == "2024-12-09"
    assert "operation struck over 75 targets" in centcom[2]


def test_second_poll_adds_nothing(corpus_run) -> None:
    lake, first, second, third = corpus_run
    assert second.rows_committed == 0 and second.files_written == 0
    failed_first = {r.source_id for r in first.reports if r.status == "error"}
    # Sources that failed the first poll back off; every other one answered 304.
    assert {r.source_id for r in second.reports if r.status == "backing_off"} == failed_first
    assert {r.status for r in second.reports if r.source_id not in failed_first} == {"not_modified"}
    assert third.rows_committed == 0 and third.rows_quarantined == 0
    assert sum(r.duplicate for r in third.reports) >= first.rows_committed
    assert read_lake(lake).num_rows == first.rows_committed
    assert not list((lake / "_txn").rglob("*")), "no transaction left behind"
    assert not (lake / "_lease.json").exists()


def test_feeds_are_parsed_as_they_arrive_and_kept_in_source_order(tmp_path: Path) -> None:
    from http.server import ThreadingHTTPServer
    from threading import Thread

    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.pipeline.full_text import fetch_sources
    from feedlake.tasks.pipeline.stages import start_reports
    from feedlake.tasks.settings import FeedlakeSettings
    from feedlake.tasks.sources.catalog import Source
    from tests.tasks.fetch.test_client import MisbehavingHandler

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingHandler)
    httpd.daemon_threads = True
    Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    due = [
        Source(id=name, url=f"{base}/{name}?order", name=name, publisher="p", kind="news")
        for name in ("late", "ok", "gone")
    ]
    reports = start_reports(due)
    try:
        store = open_store(str(tmp_path / "lake"), FeedlakeSettings())
        fetched = fetch_sources(due, {}, FeedlakeSettings(), due, "run", reports, store)
    finally:
        httpd.shutdown()
        httpd.server_close()
    # "ok" is parsed first (it arrives 0.5 s before "late"), yet the stage hands on in source order.
    assert [n.source_id for n in fetched.normalized] == ["late", "ok"]
    assert [n.source_id for n in fetched.new] == ["late", "ok"]
    assert [reports[s].status for s in ("late", "ok", "gone")] == ["ok", "ok", "error"]


def test_a_poll_where_every_feed_is_unchanged_never_imports_great_expectations(
    tmp_path: Path, snapshot_base_url: str
) -> None:
    import json
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from feedlake.flows.poll import poll_flow

    sources = write_sources(
        tmp_path / "sources.yaml",
        [("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml")],
    )
    lake = tmp_path / "lake"
    assert poll_flow(sources=str(sources), lake=str(lake)).rows_committed > 0
    # The second poll runs in a fresh process, as a served flow run does: this one imported GX.
    script = (
        "import json, sys\n"
        "from feedlake.flows.poll import poll_flow\n"
        f"summary = poll_flow(sources={str(sources)!r}, lake={str(lake)!r})\n"
        "print('RESULT', json.dumps([[r.status for r in summary.reports],"
        " 'great_expectations' in sys.modules, summary.table_version]))\n"
    )
    repo = REPO
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(repo)}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    line = next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))
    statuses, imported, table_version = json.loads(line.removeprefix("RESULT "))
    assert statuses == ["not_modified"] and table_version is None
    assert not imported
