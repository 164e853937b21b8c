"""``make bench``: run every benchmark script in turn and print all their figures as one table.

Each script runs in its own process (so peak memory and CPU are its own, and one cannot warm the
other's caches), one after another (so they never share the cores). The combined table is printed
and written to bench/results/bench.json and, as Markdown for the README, bench/results/bench.md.

Run: ``make bench`` or ``.venv/bin/python bench/run.py [--quick] [--only corpus_poll,backfill]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from table import RESULTS, Figure, load, machine, markdown_lines, table_lines  # noqa: E402

# Script name -> (arguments for the full run, arguments for --quick).
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "corpus_poll": ([], ["--runs", "1", "--copies", "3"]),
    "poll_cycle": ([], ["--quick"]),
    "full_text_poll": ([], ["--quick"]),
    "peers": ([], ["--quick"]),
    "backfill": ([], ["--articles", "50000"]),
    "lake_size": ([], ["--quick"]),
    "delta_write": ([], ["--quick"]),
}


def main() -> int:
    """Run the scripts, then print and write the combined table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test)")
    parser.add_argument("--only", default="", help="comma-separated script names to run (default: all)")
    parser.add_argument(
        "--reuse", action="store_true", help="with --only: show the other scripts' last results too"
    )
    args = parser.parse_args()
    names = [n for n in SCRIPTS if not args.only or n in args.only.split(",")]
    reused = [n for n in SCRIPTS if args.reuse and n not in names and (RESULTS / f"{n}.json").exists()]
    figures: list[Figure] = []
    seconds: dict[str, float] = {}
    failed = []
    for name in SCRIPTS:
        if name in reused:
            print(f"=== bench/{name}.py: reusing its last results ({RESULTS / name}.json)")
            figures += load(name)
            continue
        if name not in names:
            continue
        full, quick = SCRIPTS[name]
        print(f"=== bench/{name}.py {' '.join(quick if args.quick else full)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), *(quick if args.quick else full)],
            check=False,
        )
        seconds[name] = time.perf_counter() - started
        if done.returncode != 0:
            failed.append(name)
            continue
        figures += load(name)
    print(f"\nfeedlake benchmarks ({'quick' if args.quick else 'full'}); {machine()}")
    for line in table_lines(figures):
        print("  " + line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": seconds,
        "failed": failed,
        "reused": reused,
        "figures": [asdict(f) for f in figures],
    }
    (RESULTS / "bench.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "bench.md").write_text(
        f"Measured on {machine()}.\n\n" + "\n".join(markdown_lines(figures)) + "\n", encoding="utf-8"
    )
    print(f"wrote {RESULTS / 'bench.json'} and {RESULTS / 'bench.md'}")
    missed = [f for f in figures if f.met is False]
    if failed:
        print(f"FAILED to run: {', '.join(failed)}", file=sys.stderr)
    if missed:
        print(f"targets not met: {len(missed)} (see the table)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
