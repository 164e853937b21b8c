"""Write stage: split a table into Hive partitions and encode each part as zstd Parquet.

Input: validated rows (article schema, plus extra columns for quarantine). Output: planned files
with deterministic keys (a digest of the row keys and bodies they hold), so a rerun of the same rows names the
same objects; the commit stage decides when they are written and when they become visible.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import PARTITION_COLUMNS, row_keys
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, data_file_key

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


@dataclass(frozen=True)
class PlannedFile:
    """One data file to write: its key, its source and its encoded bytes."""

    key: str
    source_id: str
    rows: int
    data: bytes


def plan_run_files(accepted: pa.Table, held: pa.Table, row_group_rows: int) -> list[tuple[str, PlannedFile]]:
    """A run's data files with their table: accepted rows under articles/, held rows in quarantine."""
    files = [(ARTICLES, f) for f in plan_files(accepted, ARTICLES, row_group_rows)]
    return files + [(QUARANTINE, f) for f in plan_files(held, QUARANTINE, row_group_rows)]


def run_keys(*tables: pa.Table) -> pa.Table:
    """The (source_id, article_id, content_hash) of every row of ``tables``: the keys a commit adds."""
    return pa.concat_tables([table.select(list(KEY_COLUMNS)) for table in tables])


def plan_files(table: pa.Table, table_root: str, row_group_rows: int) -> list[PlannedFile]:
    """Encode ``table`` as one Parquet file per (source_id, published_date) partition.

    Rows are sorted once by partition, then ``published_at`` and ``article_id`` (the order inside a
    file), and each partition is a slice of that: linear in the rows, however many partitions.
    """
    if table.num_rows == 0:
        return []
    order = [(c, "ascending") for c in (*PARTITION_COLUMNS, "published_at", "article_id")]
    rows = table.take(pc.sort_indices(table, sort_keys=order))
    sources, days = rows.column("source_id"), rows.column("published_date")
    # A partition starts at row 0 and wherever source_id or published_date differs from the row before.
    changed = pc.or_(
        pc.not_equal(sources.slice(1), sources.slice(0, len(sources) - 1)),
        pc.not_equal(days.slice(1), days.slice(0, len(days) - 1)),
    )
    starts = [0, *(pc.indices_nonzero(changed).to_numpy() + 1).tolist(), rows.num_rows]
    source_values, day_values = sources.to_pylist(), days.to_pylist()

    def plan(start: int, stop: int) -> PlannedFile:
        part = rows.slice(start, stop - start)
        source_id, day = source_values[start], day_values[start]
        digest = rows_digest(part)
        key = data_file_key(
            table_root, (("source_id", source_id), ("published_date", day.isoformat())), digest
        )
        body = part.drop_columns(list(PARTITION_COLUMNS))
        return PlannedFile(key, source_id, part.num_rows, encode_parquet(body, row_group_rows))

    bounds = list(zip(starts, starts[1:], strict=False))
    if len(bounds) < ENCODE_THREADS_FROM:
        return [plan(start, stop) for start, stop in bounds]
    # Parquet encoding runs in Arrow's C++ with the GIL released: a run of many small files (a first
    # poll: one per source and day) encodes on every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="feedlake-encode") as pool:
        return list(pool.map(lambda bound: plan(*bound), bounds))


def rows_digest(rows: pa.Table) -> str:
    """Name of a data file from the rows it holds: their row keys and bodies. The same rows always
    get the same name (a rerun cannot write them twice), and a new version of an article with the
    same row key but another body (a page retried, a body re-extracted) gets a name of its own."""
    keys = row_keys(rows).to_pylist()
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
