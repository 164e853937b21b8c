"""Benchmark: how much of a run Great Expectations validation takes.

Prints a table and writes it as JSON (bench/results/validation.json):
1. a 10,000-row batch of real corpus rows through the whole suite (median of several runs);
2. whole-corpus polls (every captured feed over local HTTP into a fresh local lake, through the
   real Prefect flow): validation seconds against run seconds, median share.

Run: ``make bench-validation`` (or ``.venv/bin/python bench/validation.py --runs 5``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = ROOT / "tests" / "cases"
CORPUS = CASES / "corpus"


def corpus_files() -> list[Path]:
    """Every captured feed file of the bundled corpus."""
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"MANIFEST.tsv", "README.md"})


def corpus_table() -> object:
    """Every readable corpus entry, parsed and normalized as a poll would, as one Arrow table."""
    import pyarrow as pa

    from feedlake.tasks.errors import FeedlakeError
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    batches = []
    for path in corpus_files():
        source_id = re.sub(r"[^a-z0-9]+", "-", str(path.relative_to(CORPUS)).lower()).strip("-")[:64]
        url = f"http://bench.test/{path.name}"
        fetched = FetchResult(source_id, url, datetime.now(UTC), status=200, body=path.read_bytes())
        try:
            batches.append(
                normalize_feed(parse_feed(fetched), Source(source_id, url, source_id, "b", "news"), "b")
            )
        except FeedlakeError:
            continue
    return pa.Table.from_batches(batches)


def ten_thousand_rows(table: object, rows: int = 10_000) -> object:
    """``rows`` real rows: the corpus repeated, each copy with its own article ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    copies = []
    copy = 0
    while sum(c.num_rows for c in copies) < rows:
        ids = pc.binary_join_element_wise(table.column("article_id"), pa.scalar(f"-{copy}"), "")
        copies.append(table.set_column(0, table.schema.field(0), ids))
        copy += 1
    return pa.concat_tables(copies).slice(0, rows)


def bench_batch(runs: int) -> dict[str, float]:
    """Seconds to build the GX context and to validate 10,000 real rows (median of ``runs``)."""
    started = time.perf_counter()
    from feedlake.tasks.validate.validator import ArticleValidator

    validator = ArticleValidator()
    build = time.perf_counter() - started
    rows = ten_thousand_rows(corpus_table())
    timings = []
    for _ in range(runs):
        outcome = validator.validate(rows)
        timings.append(outcome.seconds)
    median = statistics.median(timings)
    return {
        "rows": rows.num_rows,
        "build_seconds": build,
        "validate_seconds": median,
        "rows_per_second": rows.num_rows / median,
    }


def bench_corpus_poll(runs: int) -> dict[str, float]:
    """Validation share of whole-corpus polls through the real flow (median of ``runs``)."""
    from prefect.testing.utilities import prefect_test_harness

    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    os.environ["FEEDLAKE_ALLOW_PRIVATE_NETWORKS"] = "true"
    os.environ["FEEDLAKE_PER_HOST_MIN_GAP_SECONDS"] = "0"
    shares, validate, total, rows = [], [], [], 0
    with prefect_test_harness(server_startup_timeout=120), serve_snapshots(CASES) as base:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as scratch:
                sources = Path(scratch) / "sources.yaml"
                lines = ["sources:"]
                for path in corpus_files():
                    relative = path.relative_to(CASES).as_posix()
                    source_id = re.sub(r"[^a-z0-9]+", "-", relative.lower()).strip("-")[:64]
                    lines += [
                        f"  - id: {source_id}",
                        f'    url: "{base}/{relative}"',
                        f"    name: {source_id}",
                    ]
                    # Feeds only: corpus items link to sites this machine cannot reach.
                    lines += ["    publisher: bench", "    kind: news", "    full_text: never"]
                sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
                summary = poll_flow(sources=str(sources), lake=str(Path(scratch) / "lake"))
            validate.append(summary.validate_seconds)
            total.append(summary.run_seconds)
            shares.append(summary.validate_seconds / summary.run_seconds)
            rows = summary.rows_committed + summary.rows_quarantined
    return {
        "rows": rows,
        "validate_seconds": statistics.median(validate),
        "run_seconds": statistics.median(total),
        "share": statistics.median(shares),
    }


def main() -> int:
    """Run both measurements, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions (the median is reported)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "validation.json"))
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    batch = bench_batch(args.runs)
    poll = bench_corpus_poll(max(1, args.runs // 2))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    table = [
        ("GX context build (import + suite), once per run", f"{batch['build_seconds']:.2f} s", ""),
        (
            f"validate {batch['rows']:,} real rows",
            f"{batch['validate_seconds']:.3f} s",
            f"{batch['rows_per_second']:,.0f} rows/s",
        ),
        (f"corpus poll: validate stage ({poll['rows']:,} rows)", f"{poll['validate_seconds']:.2f} s", ""),
        ("whole-corpus poll: run (fetch to commit)", f"{poll['run_seconds']:.2f} s", ""),
        ("validation share of the poll run", f"{100 * poll['share']:.1f} %", ""),
    ]
    width = max(len(row[0]) for row in table)
    print(f"feedlake validation benchmark, median of {args.runs} runs; {machine}")
    for name, value, rate in table:
        print(f"  {name.ljust(width)}  {value:>10}  {rate}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine, "runs": args.runs, "batch": batch, "corpus_poll": poll}, indent=1)
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
