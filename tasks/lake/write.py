"""Write stage: split a table into month partitions and encode each part as zstd Parquet.

Input: validated rows (article schema, plus extra columns for quarantine). Output: planned files
with deterministic keys (a digest of the row keys and bodies they hold), so a rerun of the same rows
names the same objects, each with the partition value and the per-file statistics its Delta log
entry carries; the commit stage decides when they are written and when they become visible.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import PARTITION_COLUMN, published_months, row_keys
from feedlake.schemas.validation import VALIDATION_PARTITION_COLUMN
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, VALIDATION_RESULTS, data_file_key

# The columns that identify a committed row version (what the seen index and the run's keys hold).
KEY_COLUMNS = ("source_id", "article_id", "content_hash")

WRITER_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "write_statistics": True,
    "use_dictionary": True,
    # Readers such as Athena and Spark want microsecond timestamps and the modern format version.
    "coerce_timestamps": "us",
    "allow_truncated_timestamps": False,
    "version": "2.6",
}


# Below this many files a run encodes them in turn: threads would cost more than they save.
ENCODE_THREADS_FROM = 16


# The columns whose min, max and null count each file's Delta log entry carries: what readers prune
# on (a source, a time range) and what identifies a row.
STATS_COLUMNS = ("source_id", "article_id", "published_at", "published_date", "fetched_at", "run_id")
# Longer strings get no min/max: Delta readers compare them as given, and a truncated max would be
# smaller than the values it bounds.
STATS_STRING_CHARS = 64


@dataclass(frozen=True)
class PlannedFile:
    """One data file to write: its key, row count, encoded bytes, partition and Delta statistics."""

    key: str
    rows: int
    data: bytes
    partition: Mapping[str, str] = field(default_factory=dict)
    stats: str = "{}"


def plan_run_files(accepted: pa.Table, held: pa.Table, row_group_rows: int) -> list[tuple[str, PlannedFile]]:
    """A run's data files with their table: accepted rows under articles/, held rows in quarantine."""
    files = [(ARTICLES, f) for f in plan_files(accepted, ARTICLES, row_group_rows)]
    return files + [(QUARANTINE, f) for f in plan_files(held, QUARANTINE, row_group_rows)]


def plan_validation_file(rows: pa.Table, run_id: str, row_group_rows: int) -> PlannedFile:
    """Encode a run's validation results as its one file of the validation results table (the
    month of its validation; a run validates once, so its id names the file)."""
    first = rows.column("validated_at")[0].as_py()
    partition = {VALIDATION_PARTITION_COLUMN: f"{first:%Y-%m}"}
    key = data_file_key(VALIDATION_RESULTS, tuple(partition.items()), f"run-{run_id}")
    data = encode_parquet(rows, row_group_rows)
    return PlannedFile(key, rows.num_rows, data, partition, file_stats(rows))


def run_keys(*tables: pa.Table) -> pa.Table:
    """The (source_id, article_id, content_hash) of every row of ``tables``: the keys a commit adds."""
    return pa.concat_tables([table.select(list(KEY_COLUMNS)) for table in tables])


def plan_files(table: pa.Table, table_root: str, row_group_rows: int) -> list[PlannedFile]:
    """Encode ``table`` as one Parquet file per month partition of ``published_date``.

    Rows are sorted once by month, then ``source_id``, ``published_at`` and ``article_id`` (the
    order inside a file, which makes each file's source and time statistics tight), and each
    partition is a slice of that: linear in the rows, however many sources.
    """
    if table.num_rows == 0:
        return []
    table = table.append_column(PARTITION_COLUMN, published_months(table.column("published_date")))
    order = [(c, "ascending") for c in (PARTITION_COLUMN, "source_id", "published_at", "article_id")]
    rows = table.take(pc.sort_indices(table, sort_keys=order))
    months = rows.column(PARTITION_COLUMN)
    # A partition starts at row 0 and wherever the month differs from the row before.
    changed = pc.not_equal(months.slice(1), months.slice(0, len(months) - 1))
    starts = [0, *(pc.indices_nonzero(changed).to_numpy() + 1).tolist(), rows.num_rows]
    month_values = months.to_pylist()
    body_rows = rows.drop_columns([PARTITION_COLUMN])

    def plan(start: int, stop: int) -> PlannedFile:
        part = body_rows.slice(start, stop - start)
        partition = {PARTITION_COLUMN: str(month_values[start])}
        key = data_file_key(table_root, tuple(partition.items()), rows_digest(part))
        data = encode_parquet(part, row_group_rows)
        return PlannedFile(key, part.num_rows, data, partition, file_stats(part))

    bounds = list(zip(starts, starts[1:], strict=False))
    if len(bounds) < ENCODE_THREADS_FROM:
        return [plan(start, stop) for start, stop in bounds]
    # Parquet encoding runs in Arrow's C++ with the GIL released: a run touching many months (a
    # first poll of a corpus, a backfill) encodes on every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="feedlake-encode") as pool:
        return list(pool.map(lambda bound: plan(*bound), bounds))


def file_stats(rows: pa.Table) -> str:
    """A data file's statistics as its Delta ``add`` action carries them (JSON): row count, and the
    min, max and null count of the STATS_COLUMNS it has."""
    minimum: dict[str, object] = {}
    maximum: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for name in STATS_COLUMNS:
        if name not in rows.column_names:
            continue
        column = rows.column(name)
        nulls[name] = column.null_count
        if column.null_count == len(column):
            continue
        bounds = pc.min_max(column).as_py()
        low, high = _stat_value(bounds["min"], up=False), _stat_value(bounds["max"], up=True)
        if low is not None and high is not None:
            minimum[name], maximum[name] = low, high
    stats = {"numRecords": rows.num_rows, "minValues": minimum, "maxValues": maximum, "nullCount": nulls}
    return json.dumps(stats, separators=(",", ":"))


def _stat_value(value: object, *, up: bool) -> object | None:
    if isinstance(value, datetime):
        # Delta statistics hold milliseconds: a max is rounded up so that it still bounds the values.
        whole = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if up and whole != value:
            whole += timedelta(milliseconds=1)
        return whole.strftime("%Y-%m-%dT%H:%M:%S.") + f"{whole.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= STATS_STRING_CHARS else None
    return value


def rows_digest(rows: pa.Table) -> str:
    """Name of a data file from the rows it holds: their row keys and bodies. The same rows always
    get the same name (a rerun cannot write them twice), and a new version of an article with the
    same row key but another body (a page retried, a body re-extracted) gets a name of its own.
    Rows without article ids (validation results) are named by their run and source."""
    if "article_id" in rows.column_names:
        keys = row_keys(rows).to_pylist()
    else:
        runs, sources = rows.column("run_id").to_pylist(), rows.column("source_id").to_pylist()
        keys = [f"{run}:{source}" for run, source in zip(runs, sources, strict=True)]
    bodies = (
        rows.column("content_text").to_pylist() if "content_text" in rows.column_names else [None] * len(keys)
    )
    digest = hashlib.blake2b(digest_size=12)
    for key, body in sorted(zip(keys, bodies, strict=True), key=lambda pair: (pair[0], pair[1] or "")):
        digest.update(key.encode())
        digest.update(b"\0")
        digest.update((body or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def encode_parquet(table: pa.Table, row_group_rows: int) -> bytes:
    """Encode a table as Parquet bytes with feedlake's writer options."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_rows, **WRITER_OPTIONS)
    return buffer.getvalue()
