"""The lake-facing half of a poll, and lake inspections, for tests that need many quick polls."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.tasks.dedup.seen_rows import drop_seen
from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.values import FeedValidators


def poll_once(store: ObjectStore, rows: pa.Table, run_id: str) -> None:
    """The lake-facing half of a poll: recover, dedup against the seen index, write, commit."""
    recover_lake(store)
    new = []
    for source_id in pc.unique(rows.column("source_id")).to_pylist():
        batch = rows.filter(pc.equal(rows.column("source_id"), source_id)).combine_chunks().to_batches()[0]
        new.append(drop_seen(batch, read_seen(store, source_id, batch.column("article_id"))).new)
    table = pa.Table.from_batches(new)
    files = plan_run_files(table, table.slice(0, 0), 1024)
    keys = run_keys(table)
    commit_run(store, run_id, files, keys, {"a": FeedValidators(f'"{run_id}"', None)})


def article_keys(store: ObjectStore) -> list[tuple[str, str]]:
    keys = []
    for committed in live_files(store, ARTICLES):
        table = pq.read_table(io.BytesIO(store.get(committed.key) or b""))
        keys += zip(
            table.column("article_id").to_pylist(), table.column("content_hash").to_pylist(), strict=True
        )
    return sorted(keys)


def physical_files(store: ObjectStore) -> list[str]:
    """Every data file under the articles table's folder, named by its log or not."""
    return [key for key in store.list(f"{ARTICLES}/") if "/_delta_log/" not in key]
