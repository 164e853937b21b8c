"""Compaction: merge a partition's small files into files near a target size, atomically.

Input: a lake, optionally one source and a first published date. Output: per partition, new files
(sorted by ``published_at``, write-once digest keys) committed in one record that also names the
files they replace; the old files are deleted only after that commit point. Rows are unchanged.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.tasks.errors import StoreError
from feedlake.tasks.lake.commit import commit_run, live_files
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import PlannedFile, encode_parquet, rows_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionCompaction:
    """What compaction did to one partition."""

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
    source_id: str | None = None,
    since: date | None = None,
) -> list[PartitionCompaction]:
    """Compact every partition (of one source, from ``since`` on) that has more than one file."""
    partitions: dict[str, list[str]] = defaultdict(list)
    for committed in live_files(store, ARTICLES):
        folder = committed.key.rsplit("/", 1)[0]
        if _selected(folder, source_id, since):
            partitions[folder].append(committed.key)
    added: list[tuple[str, PlannedFile]] = []
    removed: list[str] = []
    done: list[PartitionCompaction] = []
    for folder, keys in sorted(partitions.items()):
        if len(keys) < 2:
            continue
        result = _compact_partition(store, folder, keys, target_bytes, row_group_rows)
        if result is None:
            continue
        planned, report = result
        added += [(ARTICLES, p) for p in planned]
        removed += keys
        done.append(report)
    if added:
        empty = pa.table(
            {
                "source_id": pa.array([], pa.string()),
                "article_id": pa.array([], pa.string()),
                "content_hash": pa.array([], pa.string()),
            }
        )
        commit_run(store, run_id, added, empty, {}, removed=removed, kind="compact")
    log.info("compact: %d partitions, %d files -> %d", len(done), len(removed), len(added))
    return done


def _compact_partition(
    store: ObjectStore, folder: str, keys: list[str], target_bytes: int, row_group_rows: int
) -> tuple[list[PlannedFile], PartitionCompaction] | None:
    tables = []
    bytes_before = 0
    for key in keys:
        raw = store.get(key)
        if raw is None:
            raise StoreError(f"live file {store.uri(key)} is missing; the lake was changed by hand")
        bytes_before += len(raw)
        tables.append(pq.read_table(io.BytesIO(raw)))
    merged = pa.concat_tables(tables, promote_options="default")
    merged = merged.sort_by([("published_at", "ascending"), ("article_id", "ascending")])
    # Split by the bytes the rows took before: compressed size per row barely changes on merge.
    rows_per_file = max(1, int(merged.num_rows * target_bytes / max(bytes_before, 1)))
    source_id = folder.split("source_id=", 1)[1].split("/", 1)[0]
    planned = []
    for start in range(0, merged.num_rows, rows_per_file):
        part = merged.slice(start, rows_per_file)
        key = f"{folder}/part-{rows_digest(part)}.parquet"
        planned.append(PlannedFile(key, source_id, part.num_rows, encode_parquet(part, row_group_rows)))
    if {p.key for p in planned} & set(keys):
        return None  # already as compact as it gets: rewriting would replace a file with itself
    report = PartitionCompaction(
        partition=folder,
        files_before=len(keys),
        files_after=len(planned),
        rows=merged.num_rows,
        bytes_before=bytes_before,
        bytes_after=sum(len(p.data) for p in planned),
    )
    return planned, report


def _selected(folder: str, source_id: str | None, since: date | None) -> bool:
    parts = dict(segment.split("=", 1) for segment in folder.split("/")[1:] if "=" in segment)
    if source_id is not None and parts.get("source_id") != source_id:
        return False
    return since is None or date.fromisoformat(parts.get("published_date", "9999-12-31")) >= since
