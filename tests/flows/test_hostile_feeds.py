"""One poll over every kind of hostile feed: each gets a clear outcome, the good feed is unharmed."""

from __future__ import annotations

import resource
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.conftest import write_sources
from tests.support.hostile_server import ROUTES, hostile_server

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

EXPECTED_ERRORS = {
    "trickle": "timed out",
    "huge": "byte cap",
    "gzip-bomb": "byte cap",
    "loop": "too many redirects",
    "to-metadata": "cloud metadata",
    "server-error": "retryable status",
    "billion-laughs": "declares XML entities",
    "external-entity": "declares XML entities",
}


def test_every_hostile_feed_gets_a_clear_outcome(tmp_path: Path, monkeypatch) -> None:
    from feedlake.flows.poll import poll_flow

    for name, value in {
        "FEEDLAKE_MAX_BODY_BYTES": str(1 << 20),
        "FEEDLAKE_TOTAL_TIMEOUT": "3",
        "FEEDLAKE_READ_TIMEOUT": "2",
        "FEEDLAKE_FETCH_ATTEMPTS": "2",
        "FEEDLAKE_BACKOFF_SECONDS": "0.01",
        "FEEDLAKE_PER_HOST_CONCURRENCY": "16",
    }.items():
        monkeypatch.setenv(name, value)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with hostile_server() as base:
        sources = write_sources(tmp_path / "s.yaml", [(route, f"{base}/{route}") for route in ROUTES])
        summary = poll_flow(sources=str(sources), lake=str(tmp_path / "lake"))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    reports = {r.source_id: r for r in summary.reports}
    for route, reason in EXPECTED_ERRORS.items():
        assert reports[route].status == "error", (route, reports[route])
        assert reason in (reports[route].error or ""), (route, reports[route].error)
    assert reports["good"].status == "ok" and reports["good"].new == 3
    # 429 with Retry-After: waited, retried, then read.
    assert reports["rate-limited"].status == "ok" and reports["rate-limited"].fetched == 3
    # Cut off mid-document: the complete first item is read, with a warning naming the problem.
    assert reports["truncated"].status == "ok" and reports["truncated"].fetched >= 1
    assert "ill-formed XML" in reports["truncated"].warnings[0]
    # Declared UTF-8, really ISO-8859-1: decoded without replacement characters.
    assert reports["wrong-charset"].status == "ok" and reports["wrong-charset"].fetched == 10
    table = ds.dataset(tmp_path / "lake" / "articles", format="parquet", partitioning="hive").to_table()
    french = [r for r in table.to_pylist() if r["source_id"] == "wrong-charset"]
    text = " ".join(f"{r['title']} {r['summary_text']}" for r in french)
    assert "\ufffd" not in text and "é" in text
    assert grown_mib < 256, f"memory grew by {grown_mib:.0f} MiB"
    assert "/etc/passwd" not in str(summary) and "root:" not in str(summary)
