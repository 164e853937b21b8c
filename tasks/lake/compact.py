"""Maintenance of the Delta tables: compaction (a new version, same rows) and vacuum.

Compaction merges each month partition's small files into files near a target size, sorted by
``source_id`` and ``published_at`` (the clustering readers prune on, which a Z-order by source and
date would give), and commits them in one run: a new table version that removes the old files and
adds the new, marked as no data change (change-data-feed readers see nothing). It goes through the
same commit protocol as a poll (intent, write-once files, recovery), so a crash at any point leaves
no file the log does not name once the next run has recovered. The previous version stays readable
(time travel) until ``vacuum`` deletes the files no version within the retention window names.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.tasks.errors import StoreError, StoreTransientError, bug_reason
from feedlake.tasks.lake.commit import TABLE_SCHEMAS, commit_run
from feedlake.tasks.lake.delta_table import TableFile, live_files, open_table, partition_field
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, VALIDATION_RESULTS, data_file_key
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import PlannedFile, encode_parquet, file_stats, rows_digest

log = logging.getLogger(__name__)

# Removed files stay this long by default: readers in flight and time travel within a week work.
VACUUM_RETENTION_HOURS = 7 * 24
# The tables compaction and vacuum look after, and the order of rows inside a compacted file.
TABLES = (ARTICLES, QUARANTINE, VALIDATION_RESULTS)
SORT_KEYS = {
    ARTICLES: ("source_id", "published_at", "article_id"),
    QUARANTINE: ("source_id", "published_at", "article_id"),
    VALIDATION_RESULTS: ("validated_at", "source_id", "run_id"),
}


@dataclass(frozen=True)
class PartitionCompaction:
    """What compaction did to one partition of one table."""

    partition: str
    files_before: int
    files_after: int
    rows: int
    bytes_before: int
    bytes_after: int


def compact_lake(
    store: ObjectStore,
    run_id: str,
    *,
    target_bytes: int,
    row_group_rows: int,
    since: date | None = None,
) -> list[PartitionCompaction]:
    """Compact every month partition (from the month of ``since`` on) that has more than one file,
    in every table (articles, quarantine, validation results), as one run; what was done per
    partition."""
    added: list[tuple[str, PlannedFile]] = []
    removed: list[TableFile] = []
    done: list[PartitionCompaction] = []
    first_month = None if since is None else f"{since:%Y-%m}"
    for table in TABLES:
        partitions: dict[str, list[TableFile]] = defaultdict(list)
        for live in live_files(store, table):
            month = str(live.partition.get(partition_field(table).name))
            if first_month is None or month >= first_month:
                partitions[month].append(live)
        for month, files in sorted(partitions.items()):
            if len(files) < 2:
                continue
            result = _compact_partition(store, table, month, files, target_bytes, row_group_rows)
            if result is None:
                continue
            planned, report = result
            added += [(table, p) for p in planned]
            removed += files
            done.append(report)
    if added:
        no_keys = pa.table(
            {name: pa.array([], pa.string()) for name in ("source_id", "article_id", "content_hash")}
        )
        commit_run(store, run_id, added, no_keys, {}, removed=removed, kind="compact")
    log.info("compact: %d partitions, %d files -> %d", len(done), len(removed), len(added))
    return done


def _compact_partition(
    store: ObjectStore,
    table: str,
    month: str,
    files: list[TableFile],
    target_bytes: int,
    row_group_rows: int,
) -> tuple[list[PlannedFile], PartitionCompaction] | None:
    tables = []
    bytes_before = 0
    for live in files:
        raw = store.get(live.key)
        if raw is None:
            raise StoreError(f"live file {store.uri(live.key)} is missing; the lake was changed by hand")
        bytes_before += len(raw)
        tables.append(pq.read_table(io.BytesIO(raw)))
    schema = TABLE_SCHEMAS[table]
    merged = pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])
    order = [(c, "ascending") for c in SORT_KEYS[table]]
    merged = merged.sort_by(order)
    partition = {partition_field(table).name: month}
    # Merged and sorted rows compress much better than the small files did, so the split is sized
    # from the merged rows encoded once: the partition whole when it fits the target.
    whole = encode_parquet(merged, row_group_rows)
    if len(whole) <= target_bytes:
        parts = [(merged, whole)]
    else:
        rows_per_file = max(1, int(merged.num_rows * target_bytes / len(whole)))
        while True:
            parts = [
                (part, encode_parquet(part, row_group_rows))
                for part in (
                    merged.slice(start, rows_per_file) for start in range(0, merged.num_rows, rows_per_file)
                )
            ]
            # A slice compresses a little worse than the whole: shrink until every file fits.
            if rows_per_file == 1 or all(len(data) <= target_bytes for _, data in parts):
                break
            rows_per_file = max(1, rows_per_file * 4 // 5)
    planned = [
        PlannedFile(
            data_file_key(table, tuple(partition.items()), rows_digest(part)),
            part.num_rows,
            data,
            partition,
            file_stats(part),
        )
        for part, data in parts
    ]
    if {p.key for p in planned} & {f.key for f in files}:
        return None  # already as compact as it gets: rewriting would replace a file with itself
    report = PartitionCompaction(
        partition=f"{table}/{partition_field(table).name}={month}",
        files_before=len(files),
        files_after=len(planned),
        rows=merged.num_rows,
        bytes_before=bytes_before,
        bytes_after=sum(len(p.data) for p in planned),
    )
    return planned, report


def vacuum_lake(
    store: ObjectStore, retention_hours: int = VACUUM_RETENTION_HOURS, dry_run: bool = False
) -> list[str]:
    """Delete the data files no table version within ``retention_hours`` names (and files no version
    ever named, such as a crashed writer's, once that old), checkpoint each table and clean its
    expired log entries; the keys deleted (or that would be, with ``dry_run``)."""
    deleted: list[str] = []
    for table in TABLES:
        delta = open_table(store, table)
        if delta is None:
            continue
        try:
            paths = delta.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                full=True,
            )
            if not dry_run:
                delta.create_checkpoint()
                delta.cleanup_metadata()
        except Exception as exc:  # noqa: BLE001 - delta-rs raises its own and OSError kinds
            raise StoreTransientError(
                f"cannot vacuum the Delta table {store.uri(table)}: {bug_reason(exc)}"
            ) from None
        deleted += [f"{table}/{path}" for path in paths]
    return sorted(deleted)
