"""The feedlake command: poll, serve, compact, check sources, read the lake, run the demo.

Exit status: 0 when a run completed (failed sources are reported, not fatal); 2 when the run
could not proceed (bad configuration, unreadable sources file, unwritable lake, lake busy).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedlake.flows.cli_lake import add_lake_commands, run_lake_command
from feedlake.flows.cli_sources import add_sources_subcommands, run_sources_subcommand
from feedlake.flows.exit_codes import EXIT_CANNOT_RUN, EXIT_OK
from feedlake.tasks.errors import FeedlakeError, TerminalError
from feedlake.tasks.pipeline.summary import RunSummary, format_table, text_table
from feedlake.tasks.sources.catalog import check_sources

if TYPE_CHECKING:
    from feedlake.tasks.lake.compact import PartitionCompaction
    from feedlake.tasks.quarantine import ReplayResult


def add_lake(parser: argparse.ArgumentParser) -> None:
    """The ``--lake`` option every lake command takes."""
    parser.add_argument("--lake", help="lake URL (default: FEEDLAKE_LAKE or ./lake)")


def add_sources_and_lake(parser: argparse.ArgumentParser) -> None:
    """The ``--sources`` and ``--lake`` options of the commands that poll."""
    parser.add_argument("--sources", help="sources file (default: FEEDLAKE_SOURCES or the default catalog)")
    add_lake(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="feedlake", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    poll = commands.add_parser("poll", help="poll every enabled source once into the lake")
    poll.add_argument("--sources", help="sources file (default: FEEDLAKE_SOURCES or the default catalog)")
    poll.add_argument("--lake", help="lake URL: ./path, file:///abs/path (default: FEEDLAKE_LAKE or ./lake)")
    poll.add_argument(
        "--prefect",
        action="store_true",
        help="run as a Prefect flow run even when no Prefect API is configured (starts a temporary one)",
    )
    sources = commands.add_parser("sources", help="work with sources files")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    check = sources_commands.add_parser("check", help="validate a sources file, listing every error")
    check.add_argument("file")
    status = sources_commands.add_parser("status", help="table of every source's health in a lake")
    add_lake(status)
    status.add_argument("--sources", help="also list this file's sources that were never polled")
    add_sources_subcommands(sources_commands)
    compact = commands.add_parser(
        "compact", help="merge small files per month partition (a new table version), then vacuum"
    )
    add_lake(compact)
    compact.add_argument(
        "--since", type=date.fromisoformat, help="only partitions from this date's month (YYYY-MM-DD)"
    )
    compact.add_argument(
        "--target-mb", type=float, help="target file size (default: FEEDLAKE_COMPACT_TARGET_MB)"
    )
    add_lake_commands(commands)
    add_quality_commands(commands)
    websub = commands.add_parser("websub", help="WebSub push: subscribe to feeds' hubs and ingest pushes")
    websub_commands = websub.add_subparsers(dest="websub_command", required=True)
    websub_serve = websub_commands.add_parser("serve", help="run the callback endpoint until stopped")
    websub_serve.add_argument(
        "--listen", default="0.0.0.0:8080", help="HOST:PORT to listen on (default 0.0.0.0:8080)"
    )
    websub_serve.add_argument("--public-url", required=True, help="the URL hubs reach this endpoint at")
    add_sources_and_lake(websub_serve)
    websub_serve.add_argument("--lease-seconds", type=int, default=5 * 86400, help="lease to ask hubs for")
    deploy = commands.add_parser("deploy", help="register every deployment on a work pool (for workers)")
    deploy.add_argument("--pool", required=True, help="work pool whose workers run the flows")
    add_sources_and_lake(deploy)
    serve = commands.add_parser("serve", help="run every scheduled deployment in this process until stopped")
    add_sources_and_lake(serve)
    backfill = commands.add_parser(
        "backfill", help="load one source's history: archives, pages, Wayback, files"
    )
    backfill.add_argument("source", metavar="SOURCE_ID")
    add_sources_and_lake(backfill)
    backfill.add_argument(
        "--since", type=date.fromisoformat, help="only articles from this date (YYYY-MM-DD)"
    )
    backfill.add_argument(
        "--until", type=date.fromisoformat, help="only articles up to this date (YYYY-MM-DD)"
    )
    backfill.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "archive", "paged", "wayback", "files"],
        help="default auto",
    )
    backfill.add_argument("--path", help="files strategy: a folder of feed documents or WARC files")
    backfill.add_argument("--workers", type=int, help="parse processes (default: FEEDLAKE_BACKFILL_WORKERS)")
    backfill.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="parse on a Dask cluster: its scheduler address, or 'local' to start one",
    )
    reextract = commands.add_parser(
        "reextract", help="extract article bodies again from the lake's raw page capture (no fetching)"
    )
    add_lake(reextract)
    reextract.add_argument("--source", help="only this source id")
    reextract.add_argument(
        "--since", type=date.fromisoformat, help="only captures from this date on (YYYY-MM-DD)"
    )
    demo = commands.add_parser("demo", help="poll bundled feed snapshots over local HTTP into ./lake")
    demo.add_argument("--lake", default="./lake", help="lake URL (default: ./lake)")
    demo.add_argument("--prefect", action="store_true", help="as a Prefect flow run, as for poll")
    return parser


def add_quality_commands(commands: Any) -> None:
    """``feedlake quarantine list|replay`` and ``feedlake quality report``."""
    quarantine = commands.add_parser("quarantine", help="rows held by data-quality checks")
    quarantine_commands = quarantine.add_subparsers(dest="quarantine_command", required=True)
    listing = quarantine_commands.add_parser("list", help="show held rows and why they were held")
    add_lake(listing)
    listing.add_argument("--source", help="only this source id")
    listing.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    replay = quarantine_commands.add_parser(
        "replay", help="re-validate held rows with the current suite; move those that pass, exactly once"
    )
    add_lake(replay)
    replay.add_argument("--source", help="only this source id")
    replay.add_argument("--suite", help="expectation suite file (default: FEEDLAKE_SUITE or the bundled one)")
    replay.add_argument("--dry-run", action="store_true", help="report what would move; change nothing")
    quality = commands.add_parser("quality", help="data-quality reports")
    quality_commands = quality.add_subparsers(dest="quality_command", required=True)
    report = quality_commands.add_parser("report", help="write an HTML data-quality report of recent runs")
    add_lake(report)
    report.add_argument("--out", default="data-quality.html", help="HTML file to write")
    report.add_argument("--runs", type=int, default=20, help="how many recent runs (default 20)")


def quiet_third_parties() -> None:
    """Defaults (before Prefect is imported) that keep Prefect's and GX's chatter off the console."""

    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(Path(__file__).with_name("logging.yml")))
    # Telemetry needs the internet these machines lack, and its writes lock the embedded SQLite API.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the feedlake console script."""
    quiet_third_parties()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from feedlake.flows.log_filter import install_console_filter

    install_console_filter()
    try:
        if args.command == "sources" and args.sources_command == "status":
            return status_command(args.lake, args.sources)
        if args.command == "sources" and (ran := run_sources_subcommand(args)) is not None:
            return ran
        if args.command == "sources":
            return check_command(args.file)
        if args.command == "compact":
            from feedlake.flows.compact import compact_flow

            return print_compaction(compact_flow(lake=args.lake, since=args.since, target_mb=args.target_mb))
        if args.command == "quarantine" and args.quarantine_command == "list":
            return quarantine_list_command(args.lake, args.source, args.limit)
        if args.command == "quarantine":
            from feedlake.flows.quarantine import replay_flow

            return print_replay(
                replay_flow(lake=args.lake, source=args.source, suite=args.suite, dry_run=args.dry_run)
            )
        if args.command == "quality":
            return quality_report_command(args.lake, args.out, args.runs)
        if args.command == "websub":
            return websub_command(args)
        if args.command == "deploy":
            return deploy_command(args.pool, args.sources, args.lake)
        if args.command == "serve":
            return serve_command(args.sources, args.lake)
        if args.command == "backfill":
            return backfill_command(args)
        if (ran_lake := run_lake_command(args)) is not None:
            return ran_lake
        if args.command == "reextract":
            return reextract_command(args.lake, args.source, args.since)
        if args.command == "demo":
            from feedlake.flows.demo import run_demo

            return print_summary(
                run_demo(args.lake, lambda sources, lake: poll_command(sources, lake, args.prefect))
            )
        return print_summary(poll_command(args.sources, args.lake, args.prefect))
    except TerminalError as exc:
        print(f"feedlake: cannot run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except FeedlakeError as exc:
        print(f"feedlake: run failed, try again: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def console() -> None:
    """The ``feedlake`` console script: ``main`` with the process's arguments, then the exit."""
    from feedlake.flows.process_exit import exit_process

    code = main()
    stop_worker_pools()
    exit_process(code)


def stop_worker_pools() -> None:
    """Stop the worker processes a run left for the next one: a one-shot command has no next run."""
    from feedlake.tasks.pipeline.feed_reading import shutdown_reading_pools

    shutdown_reading_pools()
    # Only if a run used it: importing the extractor loads trafilatura.
    if "feedlake.tasks.full_text.extract" in sys.modules:
        from feedlake.tasks.full_text.extract import shutdown_extraction_pools

        shutdown_extraction_pools()


def poll_command(sources: str | None, lake: str | None, prefect: bool) -> RunSummary:
    """``feedlake poll``: a Prefect flow run when a Prefect API is configured (or ``--prefect``), else
    the same pipeline run in this process: no API to start, the same summary, reports and lake."""
    if prefect or prefect_api_configured(os.environ) or _prefect_loaded_with_an_api():
        from feedlake.flows.poll import poll_flow

        return poll_flow(sources=sources, lake=lake)
    from feedlake.tasks.pipeline.poll import run_poll
    from feedlake.tasks.settings import settings_with

    return run_poll(settings_with(sources=sources, lake=lake))


def _prefect_loaded_with_an_api() -> bool:
    # A caller that has loaded Prefect (a test harness, a script) may have set the API in-process.
    if "prefect.settings" not in sys.modules:
        return False
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def prefect_api_configured(environ: Mapping[str, str]) -> bool:
    """Whether ``PREFECT_API_URL`` is set in ``environ`` or in the active profile of Prefect's profiles
    file (read here, so that the check itself does not import Prefect)."""
    if environ.get("PREFECT_API_URL", "").strip():
        return True
    home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    active = environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    profile = (profiles.get("profiles") or {}).get(active) or {}
    return isinstance(profile, dict) and bool(str(profile.get("PREFECT_API_URL") or "").strip())


def check_command(path: str) -> int:
    """Print every problem of a sources file; exit 0 only if there are none."""

    result = check_sources(path, os.environ)
    for problem in result.problems:
        print(f"{path}:{problem.line}: {problem.message}")
    enabled = sum(1 for s in result.sources if s.enabled)
    if result.problems:
        print(f"{path}: {len(result.problems)} error(s)")
        return EXIT_CANNOT_RUN
    print(f"{path}: OK, {len(result.sources)} sources ({enabled} enabled)")
    return EXIT_OK


def status_command(lake: str | None, sources_file: str | None) -> int:
    """Print every source's state (stale, failing, backing off, ok) with the reason and UTC times."""
    from datetime import UTC, datetime

    from feedlake.tasks.health.records import SourceHealth, read_health
    from feedlake.tasks.health.status import STATUS_COLUMNS, status_rows
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.settings import FeedlakeSettings
    from feedlake.tasks.sources.catalog import load_sources

    settings = FeedlakeSettings()
    health = read_health(open_store(lake or settings.lake, settings))
    intervals: dict[str, float] = {}
    catalog = sources_file or (settings.sources if Path(settings.sources).is_file() else None)
    if catalog:
        for source in load_sources(catalog, os.environ):
            if source.poll_interval_seconds:
                intervals[source.id] = source.poll_interval_seconds
            if sources_file:
                health.setdefault(source.id, SourceHealth(source.id, source.display_url))
    rows, counts = status_rows(
        health,
        datetime.now(UTC),
        intervals,
        settings.default_poll_interval_seconds,
        settings.stale_after_intervals,
    )
    print(text_table(STATUS_COLUMNS, rows))
    summary = ", ".join(f"{counts[state]} {state}" for state in sorted(counts))
    print(f"{len(health)} sources: {summary or 'none polled yet'} (times in UTC)")
    return EXIT_OK


def quarantine_list_command(lake: str | None, source_id: str | None, limit: int) -> int:
    """Print held rows (newest runs first) and a count per failed expectation."""
    from collections import Counter

    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.quarantine import held_rows_for_people, read_quarantine
    from feedlake.tasks.settings import FeedlakeSettings

    settings = FeedlakeSettings()
    store = open_store(lake or settings.lake, settings)
    held = read_quarantine(store, source_id)
    held = held.sort_by([("run_id", "descending"), ("source_id", "ascending"), ("published_at", "ascending")])
    columns = ("source", "run", "published", "failed expectations", "title", "url")
    print(text_table(columns, held_rows_for_people(held, limit)))
    reasons = Counter(r for row in held.column("failed_expectations").to_pylist() for r in row)
    sources = len(set(held.column("source_id").to_pylist()))
    shown = min(limit, held.num_rows)
    print(f"{held.num_rows} rows held in quarantine from {sources} sources (showing {shown})")
    for reason, count in reasons.most_common():
        print(f"  {count:6d}  {reason}")
    return EXIT_OK


def print_replay(result: ReplayResult) -> int:
    """Print what a quarantine replay checked and moved."""
    for source_id, quality in sorted(result.by_source.items()):
        print(f"{source_id}: {quality.checked} held rows checked, {quality.passed} pass now")
    verb = "moved" if result.committed else "would move" if result.moved else "moved"
    print(
        f"replay {result.run_id}: {result.checked} held rows checked, {result.moved} {verb} to articles/, "
        f"{result.still_held} still held, {result.files_replaced} quarantine files replaced"
    )
    return EXIT_OK


def quality_report_command(lake: str | None, out: str, runs: int) -> int:
    """Render the last ``runs`` validation results of a lake as one HTML page."""
    from datetime import UTC, datetime

    from feedlake.tasks.lake.layout import VALIDATION
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.quality.charts import read_documents, read_history
    from feedlake.tasks.quality.report import render_quality_html
    from feedlake.tasks.settings import FeedlakeSettings

    settings = FeedlakeSettings()
    store = open_store(lake or settings.lake, settings)
    keys = [k for k in store.list(f"{VALIDATION}/") if k.endswith(".json")][-runs:]
    documents = read_documents(store, keys)
    history = read_history(store, datetime.now(UTC))
    Path(out).write_text(render_quality_html(documents, store.uri(), history=history), encoding="utf-8")
    print(f"wrote {out}: {len(documents)} runs")
    return EXIT_OK


def websub_command(args: argparse.Namespace) -> int:
    """Serve the WebSub callback endpoint until Ctrl-C or SIGTERM."""
    from feedlake.flows.websub import serve_websub
    from feedlake.tasks.settings import settings_with

    settings = settings_with(sources=args.sources, lake=args.lake)
    host, _, port = args.listen.rpartition(":")
    # Ctrl-C is how a person stops it: not an error.
    with contextlib.suppress(KeyboardInterrupt):
        serve_websub(settings, host or "0.0.0.0", int(port), args.public_url, args.lease_seconds)
    return EXIT_OK


def deploy_command(pool: str, sources: str | None, lake: str | None) -> int:
    """Register the poll, compaction and backfill deployments on a work pool; workers run them."""
    from feedlake.flows.deployments import build_deployments
    from feedlake.tasks.settings import settings_with

    settings = settings_with(sources=sources, lake=lake)

    for deployment in build_deployments(settings):
        # Process workers run the flow from this folder: every worker has the same code there.
        deployment.job_variables = {**(deployment.job_variables or {}), "working_dir": str(Path.cwd())}
        deployment.apply(work_pool_name=pool)
        print(f"deployed {deployment.flow_name}/{deployment.name} on work pool {pool}")
    return EXIT_OK


def serve_command(sources: str | None, lake: str | None) -> int:
    """Serve every deployment until Ctrl-C or SIGTERM (starting a Prefect server if none is set)."""
    from feedlake.flows.serve import serve_deployments
    from feedlake.tasks.settings import settings_with

    serve_deployments(settings_with(sources=sources, lake=lake))
    return EXIT_OK


def backfill_command(args: argparse.Namespace) -> int:
    """Run the backfill flow and print what it did."""

    from feedlake.flows.backfill import backfill_flow, backfill_with_dask

    if args.workers is not None:
        os.environ["FEEDLAKE_BACKFILL_WORKERS"] = str(args.workers)
    run = backfill_with_dask(args.dask, args.workers or os.cpu_count() or 1) if args.dask else backfill_flow
    result = run(
        source=args.source,
        on_task_runner=bool(args.dask),
        sources=args.sources,
        lake=args.lake,
        since=args.since,
        until=args.until,
        strategy=args.strategy,
        path=args.path,
    )
    rate = result.rows_seen / result.seconds if result.seconds else 0.0
    r = result
    print(
        f"backfill {r.source_id} ({r.strategy}{', resumed' if r.resumed else ''}): {r.captures} documents "
        f"({r.captures_failed} unreadable, {r.captures_skipped} already done), {r.rows_seen} rows seen, "
        f"{r.rows_written} written in all, {r.rows_quarantined} quarantined, {r.duplicates} duplicates, "
        f"{r.commits} commits, {r.seconds:.1f} s ({rate:,.0f} rows/s)"
    )
    for error in result.errors:
        print(f"  unreadable: {error}")
    return EXIT_OK


def print_compaction(done: list[PartitionCompaction]) -> int:
    """Print what compaction did per partition."""
    for item in done:
        print(
            f"{item.partition}: {item.files_before} files -> {item.files_after}, {item.rows} rows, "
            f"{item.bytes_before / 1e6:.2f} MB -> {item.bytes_after / 1e6:.2f} MB"
        )
    print(f"compacted {len(done)} partitions")
    return EXIT_OK


def reextract_command(lake: str | None, source: str | None, since: date | None) -> int:
    """Re-run extraction over the raw capture and print what changed."""
    from feedlake.tasks.pipeline.reextract import run_reextract
    from feedlake.tasks.settings import settings_with

    done = run_reextract(settings_with(lake=lake), source_id=source, since=since)
    print(
        f"reextract {done.run_id}: {done.pages} captured pages, {done.changed} rows with a new body "
        f"written, {done.unchanged} unchanged, {done.without_row} without a row in the table, "
        f"{done.quarantined} quarantined"
    )
    return 0


def print_summary(summary: RunSummary) -> int:
    """Print the per-source table, where the data went and how to read it."""
    print()
    print(format_table(summary.reports))
    print()
    print(
        f"run {summary.run_id}: {summary.rows_committed} rows committed, "
        f"{summary.rows_quarantined} quarantined, {summary.files_written} files, "
        f"{summary.sources_failed} of {len(summary.reports)} sources failed, "
        f"{summary.sources_not_modified} not modified, {summary.sources_backing_off} backing off"
    )
    if summary.pages_tried:
        print(
            f"full text: {summary.pages_used} of {summary.pages_tried} article pages gave the body "
            "(content_source = page); the rest keep the feed's text, page_status says why"
        )
    if summary.recovered:
        print("recovered first: " + "; ".join(summary.recovered))
    if summary.run_seconds:
        share = 100 * summary.validate_seconds / summary.run_seconds
        print(f"validation: {summary.validate_seconds:.2f} s of {summary.run_seconds:.2f} s ({share:.0f} %)")
    if summary.quality_report:
        print(f"data-quality report: {summary.quality_report}")
    print(f"lake: {summary.lake}")
    if summary.table_version is not None:
        print(f"articles table version: {summary.table_version}")
    print("read it with DuckDB (delta extension):")
    print(
        f"  duckdb -c \"SELECT source_id, count(*) FROM delta_scan('{summary.lake}/articles') "
        'GROUP BY ALL ORDER BY 2 DESC"'
    )
    print("or pyarrow over the files the table's latest version names:")
    # Not to_pyarrow_table(): with delta-rs 1.6 a process that scanned through its filesystem
    # handler can abort at exit (docs/reading.md); pyarrow's own filesystem exits cleanly.
    print(
        f'  {sys.executable} -c "import pyarrow.dataset as ds; from deltalake import DeltaTable; '
        f"print(ds.dataset(DeltaTable('{summary.lake}/articles').file_uris()).count_rows())\""
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
