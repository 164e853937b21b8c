"""The ``feedlake`` command: poll, check sources, run the demo.

Exit status: 0 when a run completed (failed sources are reported, not fatal); 2 when the run
could not proceed (bad configuration, unreadable sources file, unwritable lake, lake busy).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tasks.errors import FeedlakeError, TerminalError
from tasks.report import RunSummary, format_table
from tasks.sources import check_sources

EXIT_OK = 0
EXIT_CANNOT_RUN = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="feedlake", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    poll = commands.add_parser("poll", help="poll every enabled source once into the lake")
    poll.add_argument("--sources", help="sources file (default: FEEDLAKE_SOURCES or the default catalog)")
    poll.add_argument("--lake", help="lake URL: ./path, file:///abs/path (default: FEEDLAKE_LAKE or ./lake)")
    sources = commands.add_parser("sources", help="work with sources files")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    check = sources_commands.add_parser("check", help="validate a sources file, listing every error")
    check.add_argument("file")
    demo = commands.add_parser("demo", help="poll bundled feed snapshots over local HTTP into ./lake")
    demo.add_argument("--lake", default="./lake", help="lake URL (default: ./lake)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``feedlake`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sources":
            return check_command(args.file)
        if args.command == "demo":
            from flows.demo import run_demo

            return print_summary(run_demo(args.lake))
        from flows.poll import poll_flow

        return print_summary(poll_flow(sources=args.sources, lake=args.lake))
    except TerminalError as exc:
        print(f"feedlake: cannot run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except FeedlakeError as exc:
        print(f"feedlake: run failed, try again: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def check_command(path: str) -> int:
    """Print every problem of a sources file; exit 0 only if there are none."""
    import os

    result = check_sources(path, os.environ)
    for problem in result.problems:
        print(f"{path}:{problem.line}: {problem.message}")
    enabled = sum(1 for s in result.sources if s.enabled)
    if result.problems:
        print(f"{path}: {len(result.problems)} error(s)")
        return EXIT_CANNOT_RUN
    print(f"{path}: OK, {len(result.sources)} sources ({enabled} enabled)")
    return EXIT_OK


def print_summary(summary: RunSummary) -> int:
    """Print the per-source table, where the data went and how to read it."""
    print()
    print(format_table(summary.reports))
    print()
    print(
        f"run {summary.run_id}: {summary.rows_committed} rows committed, "
        f"{summary.rows_quarantined} quarantined, {summary.files_written} files, "
        f"{summary.sources_failed} of {len(summary.reports)} sources failed"
    )
    if summary.recovered:
        print("recovered first: " + "; ".join(summary.recovered))
    print(f"lake: {summary.lake}")
    print("read it with DuckDB:")
    print(
        f"  duckdb -c \"SELECT source_id, count(*) FROM read_parquet('{summary.lake}/articles/**/*.parquet', "
        'hive_partitioning = true) GROUP BY ALL ORDER BY 2 DESC"'
    )
    print("or pyarrow:")
    print(
        f'  python -c "import pyarrow.dataset as ds; '
        f"print(ds.dataset('{summary.lake}/articles', partitioning='hive').count_rows())\""
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
