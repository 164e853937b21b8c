"""The poll flow into an S3 lake on a real S3 server: read-back, edits, credentials, faults."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import boto3
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from feedlake.tasks.lake.delta_table import RUN_ID_KEY, commit_history
from feedlake.tasks.lake.storage import open_store
from tests.conftest import CASES, S3_ENV, CorpusFile, write_sources
from tests.support.s3_fault_proxy import FaultPolicy, fault_proxy

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

DEMO_FILES = 25


def corpus_sources(root: Path, manifest: list[CorpusFile], base_url: str) -> Path:
    """A sources file over the first DEMO_FILES corpus feeds plus the CENTCOM fixture."""
    entries = [(f.source_id, f"{base_url}/corpus/{f.path}") for f in manifest[:DEMO_FILES]]
    entries.append(("centcom", f"{base_url}/centcom/centcom-press-releases.RSS.ashx.xml"))
    return write_sources(root / "sources.yaml", entries)


def s3_table(lake: str, endpoint: str):
    """Read the article table back with pyarrow's own S3 client, as a lake reader would."""
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1")
    path = lake.removeprefix("s3://") + "/articles"
    return ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table()


def all_objects(lake: str, endpoint: str) -> dict[str, bytes]:
    bucket, _, prefix = lake.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_poll_into_s3_reads_back_once_and_never_stores_credentials(
    tmp_path: Path, manifest, snapshot_base_url: str, s3_lake: str, s3_endpoint: str
) -> None:
    from feedlake.flows.poll import poll_flow

    sources = corpus_sources(tmp_path, manifest, snapshot_base_url)
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    watched = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("feedlake")]
    levels = [w.level for w in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # DEBUG would dump every botocore request: slow, not safer
    try:
        first = poll_flow(sources=str(sources), lake=s3_lake)
        second = poll_flow(sources=str(sources), lake=s3_lake)
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    table = s3_table(s3_lake, s3_endpoint)
    assert first.rows_committed > 300 and table.num_rows == first.rows_committed
    assert len(table.column("article_id").unique()) == table.num_rows
    assert second.rows_committed == 0 and second.files_written == 0
    objects = all_objects(s3_lake, s3_endpoint)
    assert any(k.endswith(".parquet") for k in objects)
    secret = S3_ENV["AWS_SECRET_ACCESS_KEY"].encode()
    key_id = S3_ENV["AWS_ACCESS_KEY_ID"].encode()
    assert not [k for k, v in objects.items() if secret in v or key_id in v]
    assert "rows committed" in logged.getvalue()
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in logged.getvalue()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_edited_article_is_kept_as_a_new_version(tmp_path: Path, kind: str, request) -> None:
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    site = tmp_path / "site"
    site.mkdir()
    feed = site / "feed.xml"
    shutil.copy(CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml", feed)
    lake = str(tmp_path / "lake") if kind == "local" else request.getfixturevalue("s3_lake")
    with serve_snapshots(site) as base:
        sources = write_sources(tmp_path / "s.yaml", [("centcom", f"{base}/feed.xml")])
        poll_flow(sources=str(sources), lake=lake)
        original = feed.read_text(encoding="utf-8")
        feed.write_text(
            original.replace("Conducts Dozens of Airstrikes", "Conducts 75 Airstrikes", 1), "utf-8"
        )
        edited = poll_flow(sources=str(sources), lake=lake)
    assert edited.rows_committed == 1
    table = (
        s3_table(lake, request.getfixturevalue("s3_endpoint"))
        if kind == "s3"
        else ds.dataset(Path(lake) / "articles", format="parquet", partitioning="hive").to_table()
    )
    rows = [r for r in table.to_pylist() if "Airstrikes" in (r["title"] or "")]
    assert len(rows) == 2
    assert rows[0]["article_id"] == rows[1]["article_id"]
    assert rows[0]["content_hash"] != rows[1]["content_hash"]
    latest = max(rows, key=lambda r: r["fetched_at"])
    assert "Conducts 75 Airstrikes" in latest["title"]


def test_s3_faults_are_retried_and_the_run_commits_exactly_once(
    tmp_path: Path, manifest, snapshot_base_url: str, s3_lake: str, s3_endpoint: str, monkeypatch
) -> None:
    from feedlake.flows.poll import poll_flow

    sources = corpus_sources(tmp_path, manifest, snapshot_base_url)
    clean_lake = s3_lake + "-clean"
    clean = poll_flow(sources=str(sources), lake=clean_lake)
    policy = FaultPolicy(rate=0.15, seed=11)
    with fault_proxy(s3_endpoint, policy) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        monkeypatch.setenv("FEEDLAKE_S3_MAX_ATTEMPTS", "10")
        faulty = poll_flow(sources=str(sources), lake=s3_lake)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    assert sum(policy.injected.values()) >= 10, policy.injected
    assert policy.injected["drop"] >= 2, policy.injected
    assert faulty.rows_committed == clean.rows_committed
    got = s3_table(s3_lake, s3_endpoint)
    want = s3_table(clean_lake, s3_endpoint)
    pairs = sorted(zip(got["article_id"].to_pylist(), got["content_hash"].to_pylist(), strict=True))
    assert pairs == sorted(zip(want["article_id"].to_pylist(), want["content_hash"].to_pylist(), strict=True))
    runs = [c[RUN_ID_KEY] for c in commit_history(open_store(s3_lake), "articles") if RUN_ID_KEY in c]
    assert runs == [faulty.run_id]


def refuse_table_commits(method: str, path: str) -> str | None:
    # A Delta commit is a PUT of the table log's next JSON entry (version 0 creates the table).
    return "slowdown" if method == "PUT" and "/_delta_log/" in path and path.endswith(".json") else None


def test_a_store_that_refuses_the_commit_fails_cleanly_with_nothing_visible(
    tmp_path: Path, manifest, snapshot_base_url: str, s3_lake: str, s3_endpoint: str, monkeypatch
) -> None:
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.errors import StoreTransientError

    sources = corpus_sources(tmp_path, manifest, snapshot_base_url)
    policy = FaultPolicy(rule=refuse_table_commits)
    with fault_proxy(s3_endpoint, policy) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        monkeypatch.setenv("FEEDLAKE_S3_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("FEEDLAKE_COMMIT_RETRIES", "1")
        with pytest.raises(StoreTransientError, match="Delta table"):
            poll_flow(sources=str(sources), lake=s3_lake)
    assert policy.injected["slowdown"] >= 2
    leftovers = [k for k in all_objects(s3_lake, s3_endpoint) if not k.endswith("_lease.json")]
    assert leftovers == [], "a failed run leaves no data files, no state and no transaction behind"
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    rerun = poll_flow(sources=str(sources), lake=s3_lake)
    assert s3_table(s3_lake, s3_endpoint).num_rows == rerun.rows_committed > 300
