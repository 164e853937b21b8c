"""Benchmark figures 1, 2 and 6: whole-corpus polls against bare feedparser, validation share, compaction.

1. Every captured feed of the bundled corpus (tests/cases/corpus) served over local HTTP and polled
   through the real Prefect flow into a fresh local lake: articles per second, against bare
   ``feedparser.parse()`` with its defaults over the same bytes (parse only). Both pinned to one core.
2. The same poll into a bucket on moto's S3 server (its own process, on loopback, started before
   the pinning so that it does not share the poll's core), and its wall time against the local
   lake's (issue 19: within 1.5x).
6. Great Expectations' share of those runs, and compaction throughput over a lake of many small files.

Each configuration runs ``--runs`` times in this process and the median is reported; the first poll
(cold: imports, the GX context) is reported on its own. Run: ``make bench`` (all figures) or
``.venv/bin/python bench/corpus_poll.py --runs 5``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import Figure, publish  # noqa: E402

CASES = ROOT / "tests" / "cases"
CORPUS = CASES / "corpus"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "feedlake-bench-key-id",
    "AWS_SECRET_ACCESS_KEY": "feedlake-bench-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def corpus_files() -> list[Path]:
    """Every captured feed file of the bundled corpus."""
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"MANIFEST.tsv", "README.md"})


def source_id(path: Path) -> str:
    """A source id from a corpus path."""
    return re.sub(r"[^a-z0-9]+", "-", str(path.relative_to(CORPUS)).lower()).strip("-")[:64]


def write_sources(folder: Path, base_url: str) -> Path:
    """A sources file with one source per corpus file, served from ``base_url``."""
    lines = ["sources:"]
    for path in corpus_files():
        relative = path.relative_to(CASES).as_posix()
        lines += [
            f"  - id: {source_id(path)}",
            f'    url: "{base_url}/{relative}"',
            f"    name: {source_id(path)}",
            "    publisher: bench",
            "    kind: news",
            # The feeds' own work: their items link to sites this machine cannot reach (the
            # full-text cost has its own figure, bench/full_text_poll.py).
            "    full_text: never",
        ]
    out = folder / "sources.yaml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def bare_feedparser(runs: int) -> dict[str, float]:
    """Seconds for feedparser.parse() with defaults over every corpus body (median of ``runs``)."""
    import feedparser

    bodies = [p.read_bytes() for p in corpus_files()]
    timings, entries = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        entries = sum(len(feedparser.parse(body).entries) for body in bodies)
        timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)
    return {"entries": entries, "seconds": seconds, "per_second": entries / seconds}


def parse_and_normalize(runs: int) -> dict[str, float]:
    """Seconds for feedlake's parse + normalize stages over the same bodies (median of ``runs``)."""
    from datetime import UTC, datetime

    from feedlake.tasks.errors import FeedlakeError
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    feeds = [(source_id(p), p.read_bytes()) for p in corpus_files()]
    timings, rows = [], 0
    for _ in range(runs):
        started, rows = time.perf_counter(), 0
        for feed_id, body in feeds:
            url = f"http://bench.test/{feed_id}.xml"
            fetched = FetchResult(feed_id, url, datetime.now(UTC), status=200, body=body)
            try:
                rows += normalize_feed(
                    parse_feed(fetched), Source(feed_id, url, feed_id, "b", "news"), "r"
                ).num_rows
            except FeedlakeError:
                continue
        timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)
    return {"rows": rows, "seconds": seconds, "per_second": rows / seconds}


def corpus_polls(runs: int, s3_endpoint: str | None) -> dict[str, Any]:
    """``runs`` whole-corpus polls through the real flow, each into a fresh lake."""
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    results = []
    with serve_snapshots(CASES) as base, tempfile.TemporaryDirectory() as scratch:
        sources = write_sources(Path(scratch), base)
        for run in range(runs + 1):  # run 0 is the cold one
            if s3_endpoint is None:
                lake = str(Path(scratch) / f"lake-{run}")
            else:
                import boto3

                boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=f"bench-{run}")
                lake = f"s3://bench-{run}/lake"
            cpu, started = time.process_time(), time.perf_counter()
            summary = poll_flow(sources=str(sources), lake=lake)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            rows = summary.rows_committed + summary.rows_quarantined
            results.append(
                {
                    "rows": rows,
                    "wall": wall,
                    "cpu": cpu,
                    "run_seconds": summary.run_seconds,
                    "validate_seconds": summary.validate_seconds,
                    "failed": summary.sources_failed,
                }
            )
    warm = results[1:]
    return {
        "cold": results[0],
        "rows": warm[0]["rows"],
        "wall": statistics.median(r["wall"] for r in warm),
        "cpu": statistics.median(r["cpu"] for r in warm),
        "run_seconds": statistics.median(r["run_seconds"] for r in warm),
        "validate_share": statistics.median(r["validate_seconds"] / r["run_seconds"] for r in warm),
        "validate_seconds": statistics.median(r["validate_seconds"] for r in warm),
        "runs": results,
    }


def compaction(copies: int) -> dict[str, float]:
    """Commit the corpus ``copies`` times (fresh ids) as separate files, then compact the lake.

    Each copy is dated one day (as a day of polls would be), so every source's partition for that
    day ends up with ``copies`` small files: the small-files problem compaction exists for.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from validation import corpus_table

    from feedlake.tasks.lake.commit import commit_run
    from feedlake.tasks.lake.compact import compact_lake
    from feedlake.tasks.lake.layout import ARTICLES, new_run_id
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.lake.write import plan_files

    table = corpus_table()
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(str(Path(scratch) / "lake"))
        for copy in range(copies):
            ids = pc.binary_join_element_wise(table.column("article_id"), pa.scalar(f"-{copy}"), "")
            rows = table.set_column(table.schema.get_field_index("article_id"), "article_id", ids)
            day = pa.array([date(2026, 11, 23)] * rows.num_rows, pa.date32())
            rows = rows.set_column(rows.schema.get_field_index("published_date"), "published_date", day)
            files = [(ARTICLES, f) for f in plan_files(rows, ARTICLES, 65536)]
            commit_run(
                store, new_run_id(), files, rows.select(["source_id", "article_id", "content_hash"]), {}
            )
        started = time.perf_counter()
        done = compact_lake(store, new_run_id(), target_bytes=128 * 1024 * 1024, row_group_rows=65536)
        seconds = time.perf_counter() - started
    bytes_before = sum(p.bytes_before for p in done)
    return {
        "partitions": len(done),
        "files_before": sum(p.files_before for p in done),
        "files_after": sum(p.files_after for p in done),
        "rows": sum(p.rows for p in done),
        "mb_before": bytes_before / 1e6,
        "seconds": seconds,
        "mb_per_second": bytes_before / 1e6 / seconds,
    }


def main() -> int:
    """Measure, print the table, write bench/results/corpus_poll.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="warm runs per configuration (median reported)")
    parser.add_argument("--no-s3", action="store_true", help="skip figure 2 (the S3 server)")
    parser.add_argument("--all-cores", action="store_true", help="do not pin this process to one core")
    parser.add_argument("--copies", type=int, default=24, help="corpus copies committed before compaction")
    args = parser.parse_args()
    with contextlib.ExitStack() as servers:
        endpoint = None
        if not args.no_s3:
            from tests.support.moto_server import moto_server

            # Started before the pinning below: the S3 server is another machine's work, not
            # feedlake's, and must not take the polling process's one core (figure 2's ratio).
            endpoint = servers.enter_context(moto_server())
        return measure(args, endpoint)


def measure(args: argparse.Namespace, endpoint: str | None) -> int:
    """Run the figures (``endpoint``: moto's S3 server, or None without figure 2) and publish them."""
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # figure 1 is "on one core"
    os.environ.update(
        {
            "FEEDLAKE_ALLOW_PRIVATE_NETWORKS": "true",
            "FEEDLAKE_PER_HOST_MIN_GAP_SECONDS": "0",
            "GX_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from prefect.testing.utilities import prefect_test_harness

    baseline = bare_feedparser(args.runs)
    stages = parse_and_normalize(args.runs)
    with prefect_test_harness(server_startup_timeout=120):
        local = corpus_polls(args.runs, None)
        s3: dict[str, Any] | None = None
        if endpoint is not None:
            saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
            os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
            try:
                s3 = corpus_polls(args.runs, endpoint)
            finally:
                for key, value in saved.items():
                    os.environ.pop(key) if value is None else os.environ.update({key: value})
    compact = compaction(args.copies)
    rate = baseline["per_second"]
    figures = [
        Figure("1", "bare feedparser.parse(), defaults, corpus bytes", rate, "articles/s"),
        Figure(
            "1",
            f"whole-corpus poll, local lake ({local['rows']:,} articles, flow wall time)",
            local["rows"] / local["wall"],
            "articles/s",
            rate,
            "feedparser",
            local["rows"] / local["wall"] / rate,
            ">= 2x (one core)",
            local["rows"] / local["wall"] / rate >= 2,
        ),
        Figure(
            "1",
            f"feedlake parse + normalize only, same bytes ({stages['rows']:,} rows)",
            stages["per_second"],
            "articles/s",
            rate,
            "feedparser",
            stages["per_second"] / rate,
        ),
        Figure(
            "1",
            "the same poll, first of a fresh process (imports, GX context)",
            local["cold"]["rows"] / local["cold"]["wall"],
            "articles/s",
            rate,
            "feedparser",
            local["cold"]["rows"] / local["cold"]["wall"] / rate,
        ),
    ]
    if s3 is not None:
        figures.append(
            Figure(
                "2",
                f"whole-corpus poll, S3 (moto server) lake ({s3['rows']:,} articles)",
                s3["rows"] / s3["wall"],
                "articles/s",
                rate,
                "feedparser",
                s3["rows"] / s3["wall"] / rate,
            )
        )
        figures.append(
            Figure(
                "2",
                "whole-corpus poll, S3 (moto server) lake: wall time",
                s3["wall"],
                "s",
                local["wall"],
                "local lake",
                s3["wall"] / local["wall"],
                "S3/local <= 1.5x",
                s3["wall"] / local["wall"] <= 1.5,
            )
        )
    figures += [
        Figure("6", "GX validation share of a corpus poll's run time", 100 * local["validate_share"], "%"),
        Figure(
            "6",
            f"compaction: {compact['files_before']:,} files in {compact['partitions']:,} partitions "
            f"-> {compact['files_after']:,} ({compact['mb_before']:.0f} MB)",
            compact["mb_per_second"],
            "MB/s",
        ),
    ]
    publish(
        "corpus_poll",
        figures,
        {
            "baseline": baseline,
            "parse_normalize": stages,
            "local": local,
            "s3": s3,
            "compaction": compact,
            "pinned": not args.all_cores,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
