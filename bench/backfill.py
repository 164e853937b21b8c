"""Benchmark: backfill throughput and peak memory on a large synthetic archive, 1 and 2 processes.

The archive is built from the 300 real items of the Economist Asia feed in tests/cases/corpus,
each copy with its own guid and link: ``--articles`` items in documents of 1,000 (100 documents
for the default 100,000). Each configuration runs in a fresh process (so peak RSS is its own) with
the files strategy into a fresh local lake. Prints a table and writes bench/results/backfill.json.

Run: ``make bench-backfill`` (or ``.venv/bin/python bench/backfill.py --articles 100000``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FEED = ROOT / "tests" / "cases" / "corpus" / "fastfeedparser" / "960551eca5b5db81.economist-asia.xml"
PER_DOCUMENT = 1000


def build_archive(folder: Path, articles: int) -> None:
    """Write ``articles`` synthetic items, PER_DOCUMENT to a file, from the real feed's items."""
    text = FEED.read_text(encoding="utf-8")
    items = re.findall(r"<item>.*?</item>", text, re.S)
    head, tail = text[: text.index(items[0])], text[text.index(items[-1]) + len(items[-1]) :]
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, articles, PER_DOCUMENT):
        chunk = []
        for n in range(start, min(start + PER_DOCUMENT, articles)):
            item = items[n % len(items)]
            item = re.sub(r"<guid([^>]*)>[^<]*</guid>", rf"<guid\1>https://synthetic.test/a/{n}</guid>", item)
            item = re.sub(r"<link>[^<]*</link>", f"<link>https://synthetic.test/a/{n}</link>", item)
            chunk.append(item)
        (folder / f"doc-{start // PER_DOCUMENT:05d}.xml").write_text(
            head + "".join(chunk) + tail, encoding="utf-8"
        )


def run_one(folder: Path, workers: int) -> dict[str, float]:
    """One backfill of the archive into a fresh lake (called in its own process)."""
    from tasks.backfill import commit_backfill_batch, run_backfill, start_or_resume
    from tasks.backfill_captures import file_captures
    from tasks.sources import Source
    from tasks.storage import open_store
    from tasks.validate import ArticleValidator

    validator = ArticleValidator()
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(str(Path(scratch) / "lake"))
        source = Source("synthetic", "https://synthetic.test/feed.xml", "synthetic", "bench", "news")
        checkpoint, _ = start_or_resume(store, source.id, "files")
        _, captures = file_captures(folder, source.url)
        started = time.perf_counter()
        result = run_backfill(
            store,
            source,
            captures,
            checkpoint,
            validator=validator,
            commit=commit_backfill_batch,
            lease_seconds=900,
            lease_wait_seconds=60,
            row_group_rows=65536,
            workers=workers,
            batch_rows=50_000,
        )
        seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "workers": workers,
        "rows": result.rows_written,
        "seconds": seconds,
        "rows_per_second": result.rows_written / seconds,
        "peak_rss_parent_mib": own,
        "peak_rss_worker_mib": children,
    }


def main() -> int:
    """Build the archive once, run each configuration in its own process, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="repetitions per configuration (median kept)")
    parser.add_argument("--one", nargs=2, metavar=("FOLDER", "WORKERS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "backfill.json"))
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), int(args.one[1]))))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "archive"
        build_archive(folder, args.articles)
        size = sum(p.stat().st_size for p in folder.iterdir())
        results = []
        for workers in (1, 2):
            runs = []
            for _ in range(args.runs):
                done = subprocess.run(
                    [sys.executable, __file__, "--one", str(folder), str(workers)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            runs.sort(key=lambda r: r["seconds"])
            results.append(runs[len(runs) // 2])
    speedup = results[0]["seconds"] / results[1]["seconds"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    documents = args.articles // PER_DOCUMENT
    print(
        f"feedlake backfill benchmark: {args.articles:,} articles, {documents} documents, {size / 1e6:.0f} MB"
    )
    print(f"machine: {machine}")
    print("  workers  seconds  articles/s  peak RSS parent  peak RSS worker")
    for r in results:
        print(
            f"  {r['workers']:>7}  {r['seconds']:>7.1f}  {r['rows_per_second']:>10,.0f}  "
            f"{r['peak_rss_parent_mib']:>11.0f} MiB  {r['peak_rss_worker_mib']:>11.0f} MiB"
        )
    print(f"  speed-up from 1 to 2 processes: {speedup:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": machine, "articles": args.articles, "results": results, "speedup": speedup}, indent=1
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
