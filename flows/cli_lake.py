"""``feedlake files | changes | vacuum | migrate``: the lake's Delta tables from the command line.

``feedlake.flows.cli`` adds these with ``add_lake_commands`` and runs them with ``run_lake_command``
(None for any other command).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from feedlake.flows.exit_codes import EXIT_OK
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, VALIDATION_RESULTS

TABLES = [ARTICLES, QUARANTINE, VALIDATION_RESULTS]


def add_lake_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add files, changes, vacuum and migrate to the command's subparsers."""
    files = commands.add_parser("files", help="list the data files a table's latest version names")
    files.add_argument("--lake", help="lake URL (default: FEEDLAKE_LAKE or ./lake)")
    files.add_argument("--table", default=ARTICLES, choices=TABLES)
    changes = commands.add_parser("changes", help="rows a table's versions after N inserted or deleted")
    changes.add_argument("--lake", help="lake URL (default: FEEDLAKE_LAKE or ./lake)")
    changes.add_argument("--table", default=ARTICLES, choices=TABLES)
    changes.add_argument(
        "--since-version",
        type=int,
        required=True,
        help="the last table version you read (-1: from the start)",
    )
    changes.add_argument("--out", help="write the changed rows to this Parquet file")
    vacuum = commands.add_parser("vacuum", help="delete data files no table version in the window names")
    vacuum.add_argument("--lake", help="lake URL (default: FEEDLAKE_LAKE or ./lake)")
    vacuum.add_argument("--retention-hours", type=int, default=7 * 24, help="default 168 (7 days)")
    vacuum.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    migrate = commands.add_parser("migrate", help="turn a lake of the pre-Delta layout into Delta tables")
    migrate.add_argument("--lake", help="lake URL (default: FEEDLAKE_LAKE or ./lake)")


def run_lake_command(args: argparse.Namespace) -> int | None:
    """Run one of this module's commands; None if ``args`` names another."""
    if args.command == "files":
        return files_command(args.lake, args.table)
    if args.command == "changes":
        return changes_command(args.lake, args.table, args.since_version, args.out)
    if args.command == "vacuum":
        return vacuum_command(args.lake, args.retention_hours, args.dry_run)
    if args.command == "migrate":
        return migrate_command(args.lake)
    return None


def _store(lake: str | None) -> Any:
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.settings import FeedlakeSettings

    settings = FeedlakeSettings()
    return open_store(lake or settings.lake, settings), settings


def files_command(lake: str | None, table: str) -> int:
    """Print the URI of every data file of a table's latest version, one per line."""
    from feedlake.tasks.lake.delta_table import live_files

    store, _ = _store(lake)
    for live in live_files(store, table):
        print(store.uri(live.key))
    return EXIT_OK


def changes_command(lake: str | None, table: str, since_version: int, out: str | None) -> int:
    """Print (and optionally write) what changed in a table after ``since_version``."""
    from collections import Counter

    import pyarrow.parquet as pq

    from feedlake.tasks.lake.changes import read_changes

    store, _ = _store(lake)
    changes = read_changes(store, since_version, table)
    kinds = Counter(changes.rows.column("_change_type").to_pylist())
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no changed rows"
    if since_version >= changes.latest_version:
        print(f"{store.uri(table)}: at version {changes.latest_version}: no changed rows")
    else:
        print(f"{store.uri(table)}: versions {since_version + 1}..{changes.latest_version}: {counts}")
    if out:
        pq.write_table(changes.rows, out)
        print(f"wrote {changes.rows.num_rows} rows to {out}")
    print(f"next time: --since-version {changes.latest_version}", file=sys.stderr)
    return EXIT_OK


def vacuum_command(lake: str | None, retention_hours: int, dry_run: bool) -> int:
    """Vacuum both tables under the lake's lease; print what was (or would be) deleted."""
    from feedlake.tasks.lake.compact import vacuum_lake
    from feedlake.tasks.lake.layout import new_run_id
    from feedlake.tasks.lake.transaction import lake_transaction

    store, settings = _store(lake)
    with lake_transaction(store, new_run_id(), settings.lease_seconds, settings.lease_wait_seconds):
        deleted = vacuum_lake(store, retention_hours, dry_run=dry_run)
    for key in deleted:
        print(store.uri(key))
    print(f"{'would delete' if dry_run else 'deleted'} {len(deleted)} files")
    return EXIT_OK


def migrate_command(lake: str | None) -> int:
    """Migrate a lake of the pre-Delta layout in place, under its lease; print what was done."""
    from feedlake.tasks.lake.layout import new_run_id
    from feedlake.tasks.lake.lease import confirm_lease
    from feedlake.tasks.lake.migrate import migrate_lake
    from feedlake.tasks.lake.transaction import lake_transaction

    store, settings = _store(lake)
    run_id = new_run_id()
    with lake_transaction(store, run_id, settings.lease_seconds, settings.lease_wait_seconds):
        result = migrate_lake(
            store, before_commit=lambda: confirm_lease(store, run_id, settings.lease_seconds)
        )
    print(result.describe())
    return EXIT_OK
