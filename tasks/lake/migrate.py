"""``feedlake migrate``: turn a lake of the pre-Delta layout into the Delta tables, in place.

Run under the lake's lease, after ``recover_lake`` (``lake_transaction`` does both). Steps:

1. Read every live row of the old layout (``legacy_layout``: the files the ``_commits/`` records
   name), as the current row schemas.
2. Commit them with ``commit_run`` as one run of kind ``migrate``: new month-partition files under
   the same table folders, one Delta commit per table (articles last, the migration's commit point).
   A crash before that point is rolled back by the next run's recovery; after it, rolled forward.
3. Only then delete the old layout's data files (every object under the old ``source_id=`` folders
   that the Delta tables do not name), and the ``_commits/`` records last: while any record is
   left, a rerun knows there is something to finish.

A rerun after a crash at any point finishes the job without a row twice: if the articles table's
history holds a ``migrate`` commit, the rows are in and only step 3 is left. The seen index
(``article_id:content_hash`` per source) is the same in both layouts and is kept; keys it lacks
(a run of the old release that died after its commit point, before its state was applied) are
merged in with the migration's commit, so the next poll does not take those rows in again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import row_keys
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.delta_table import KIND_KEY, RUN_ID_KEY, commit_history, live_files
from feedlake.tasks.lake.layout import ARTICLES, LEGACY_COMMITS, QUARANTINE, new_run_id
from feedlake.tasks.lake.legacy_layout import (
    LEGACY_TABLES,
    commit_record_keys,
    legacy_data_keys,
    live_legacy_files,
    read_legacy_rows,
)
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import KEY_COLUMNS, PlannedFile, plan_run_files, run_keys

log = logging.getLogger(__name__)

MIGRATE_KIND = "migrate"
# Rows per Parquet row group of the migrated files (the poll's default).
ROW_GROUP_ROWS = 65536


@dataclass(frozen=True)
class MigrationResult:
    """What one ``migrate_lake`` call did."""

    lake: str
    # The run whose commit holds the migrated rows, and the articles table version it made (None:
    # nothing was committed, by this call or an earlier one).
    run_id: str | None = None
    version: int | None = None
    # Per table: live rows and files of the old layout this call migrated, and the files they became.
    rows: Mapping[str, int] = field(default_factory=dict)
    legacy_files: Mapping[str, int] = field(default_factory=dict)
    delta_files: Mapping[str, int] = field(default_factory=dict)
    # Row keys the seen index lacked, merged in with the commit.
    keys_indexed: int = 0
    # Old-layout objects deleted: data files, then commit records.
    files_deleted: int = 0
    records_deleted: int = 0
    # The rows were committed by an earlier call that died before its cleanup finished.
    resumed: bool = False
    # Old-layout data files left in place (no commit record and no migration names them).
    left_in_place: int = 0

    @property
    def migrated(self) -> bool:
        """Whether this call changed the lake."""
        return bool(self.rows or self.files_deleted or self.records_deleted)

    def describe(self) -> str:
        """One paragraph for the operator: what was migrated, or why nothing was."""
        if not self.migrated:
            text = f"nothing to migrate: {self.lake} has no commit record of the pre-Delta layout"
            if self.left_in_place:
                text += (
                    f"; {self.left_in_place} files in its old partition folders are named by no "
                    "commit record and were left in place"
                )
            return text
        lines = []
        if self.resumed:
            lines.append(
                f"finished the migration of {self.lake}: its rows were committed by run {self.run_id} "
                f"(articles version {self.version})"
            )
        else:
            tables = "; ".join(
                f"{table}: {self.rows.get(table, 0)} rows, {self.legacy_files.get(table, 0)} files -> "
                f"{self.delta_files.get(table, 0)} files"
                for table in LEGACY_TABLES
            )
            where = (
                f" as run {self.run_id} (articles version {self.version})"
                if self.run_id is not None
                else " (no live rows: nothing to commit)"
            )
            lines.append(f"migrated {self.lake} to Delta tables{where}: {tables}")
            if self.keys_indexed:
                lines.append(f"added {self.keys_indexed} row keys the seen index lacked")
        lines.append(
            f"deleted {self.files_deleted} data files of the old layout and "
            f"{self.records_deleted} objects under {LEGACY_COMMITS}/"
        )
        return "\n".join(lines)


def migrate_lake(
    store: ObjectStore,
    row_group_rows: int = ROW_GROUP_ROWS,
    before_commit: Callable[[], None] | None = None,
) -> MigrationResult:
    """Migrate a lake of the pre-Delta layout to Delta tables in place; safe to rerun after a crash.

    Call under the lake's lease, after recovery (``lake_transaction``); ``before_commit`` runs
    just before the commit (the CLI confirms and extends the lease there: reading a large lake
    may outlast it).
    """
    lake = store.uri()
    has_records = bool(commit_record_keys(store))
    stale = [] if has_records else _legacy_data(store)
    if not has_records and not stale:
        return MigrationResult(lake)
    committed = migrate_commit(store)
    if committed is not None:
        # An earlier call committed the rows and died before its cleanup finished.
        files_deleted, records_deleted = _delete_legacy(store)
        return MigrationResult(
            lake, *committed, files_deleted=files_deleted, records_deleted=records_deleted, resumed=True
        )
    if not has_records:
        # Without a record or a migration, nothing says whether these files hold rows: keep them.
        return MigrationResult(lake, left_in_place=len(stale))
    live = live_legacy_files(store)
    tables = {table: read_legacy_rows(store, live[table], table) for table in LEGACY_TABLES}
    keys = run_keys(*tables.values())
    run_id: str | None = None
    version: int | None = None
    planned: list[tuple[str, PlannedFile]] = []
    missing = keys.slice(0, 0)
    if keys.num_rows:
        # A fresh run id per attempt: recovery rolls a dead attempt back by its own intent.
        run_id = new_run_id()
        planned = plan_run_files(tables[ARTICLES], tables[QUARANTINE], row_group_rows)
        missing = unindexed_keys(store, keys)
        if before_commit is not None:
            before_commit()
        commit_run(store, run_id, planned, missing, validators={}, kind=MIGRATE_KIND)
        version = _version_of(store, run_id)
        log.info("migrate: run %s committed %d rows in %d files", run_id, keys.num_rows, len(planned))
    files_deleted, records_deleted = _delete_legacy(store)
    return MigrationResult(
        lake,
        run_id,
        version,
        rows={table: rows.num_rows for table, rows in tables.items()},
        legacy_files={table: len(live[table]) for table in LEGACY_TABLES},
        delta_files={table: sum(1 for t, _ in planned if t == table) for table in LEGACY_TABLES},
        keys_indexed=missing.num_rows,
        files_deleted=files_deleted,
        records_deleted=records_deleted,
    )


def migrate_commit(store: ObjectStore) -> tuple[str, int] | None:
    """The (run id, table version) of the articles table's migrate commit, if it has one."""
    for commit in commit_history(store, ARTICLES):
        if commit.get(KIND_KEY) == MIGRATE_KIND:
            return str(commit.get(RUN_ID_KEY, "")), int(commit.get("version", -1))
    return None


def _version_of(store: ObjectStore, run_id: str) -> int | None:
    # The history says which version the run's commit made (a rolled-forward commit included).
    for commit in commit_history(store, ARTICLES):
        if commit.get(RUN_ID_KEY) == run_id:
            return int(commit.get("version", -1))
    return None


def unindexed_keys(store: ObjectStore, keys: pa.Table) -> pa.Table:
    """The rows of ``keys`` (source_id, article_id, content_hash) whose source's seen index lacks them.

    A seen index that cannot be read keeps all its source's keys: the commit's merge repairs it from
    the tables (which then hold the migrated rows) or marks it for rebuild.
    """
    parts = [keys.slice(0, 0)]
    for source_id in pc.unique(keys.column("source_id")).to_pylist():
        mine = keys.filter(pc.equal(keys.column("source_id"), source_id))
        try:
            seen = read_seen(store, str(source_id), mine.column("article_id").combine_chunks())
        except DamagedObjectError as exc:
            log.warning("migrate: seen index of %s cannot be read (%s); merging all its keys", source_id, exc)
            parts.append(mine)
            continue
        parts.append(mine.filter(pc.invert(pc.is_in(row_keys(mine), value_set=seen))))
    return pa.concat_tables(parts).select(list(KEY_COLUMNS))


def _legacy_data(store: ObjectStore) -> list[str]:
    return [key for table in LEGACY_TABLES for key in legacy_data_keys(store, table)]


def _delete_legacy(store: ObjectStore) -> tuple[int, int]:
    """Delete the old layout's data files no Delta table names, then every ``_commits/`` object."""
    named = {f.key for table in LEGACY_TABLES for f in live_files(store, table)}
    stale = [key for key in _legacy_data(store) if key not in named]
    for key in stale:
        store.delete(key)
    # The records go last: while one is left, a rerun comes back here and finishes.
    records = store.list(f"{LEGACY_COMMITS}/")
    for key in records:
        store.delete(key)
    if stale or records:
        log.info("migrate: deleted %d old data files and %d commit records", len(stale), len(records))
    return len(stale), len(records)
