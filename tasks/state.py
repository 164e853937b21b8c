"""Per-source state kept in the lake: HTTP validators and the index of committed article keys.

State is only ever written after the commit record of the run it describes (see ``commit``), and
every write here is idempotent, so re-applying a commit after a crash changes nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.fetch import FeedValidators
from tasks.lake_layout import feed_state_key, seen_key
from tasks.storage import ObjectStore, update_object

SEEN_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False)])


def read_validators(store: ObjectStore, source_ids: Iterable[str]) -> dict[str, FeedValidators]:
    """Return the stored ETag / Last-Modified of each source that has any."""
    found: dict[str, FeedValidators] = {}
    for source_id in source_ids:
        raw = store.get(feed_state_key(source_id))
        if raw is None:
            continue
        state = json.loads(raw)
        found[source_id] = FeedValidators(etag=state.get("etag"), last_modified=state.get("last_modified"))
    return found


def write_validators(store: ObjectStore, validators: Mapping[str, FeedValidators], run_id: str) -> None:
    """Store each source's validators from ``run_id``, unless a later run already stored newer ones."""
    for source_id, value in validators.items():
        document = {"etag": value.etag, "last_modified": value.last_modified, "run_id": run_id}
        body = json.dumps(document, sort_keys=True).encode()

        def newer_wins(current: bytes | None, body: bytes = body) -> bytes | None:
            # Run ids sort by start time: a later run's validators stay.
            if current is not None and str(json.loads(current).get("run_id", "")) > run_id:
                return None
            return body

        update_object(store, feed_state_key(source_id), newer_wins, f"feed state of {source_id}")


def read_seen(store: ObjectStore, source_id: str) -> pa.Array:
    """Return the row keys (article_id:content_hash) already committed for a source."""
    raw = store.get(seen_key(source_id))
    return pa.array([], pa.string()) if raw is None else _seen_keys(raw)


def merge_seen(store: ObjectStore, source_id: str, keys: pa.Array) -> None:
    """Add keys to a source's seen index: a set union written with If-Match, so it is safe to repeat
    and safe against a concurrent writer (on conflict it re-reads and merges again)."""

    def union(current: bytes | None) -> bytes | None:
        known = _seen_keys(current) if current is not None else pa.array([], pa.string())
        merged = pa.concat_arrays([known, keys.cast(pa.string())]).unique()
        if current is not None and len(merged) == len(known):
            return None  # nothing new: a replay after a crash
        buffer = io.BytesIO()
        pq.write_table(pa.table({"key": merged}, schema=SEEN_SCHEMA), buffer, compression="zstd")
        return buffer.getvalue()

    update_object(store, seen_key(source_id), union, f"seen index of {source_id}")


def _seen_keys(raw: bytes) -> pa.Array:
    return pq.read_table(io.BytesIO(raw)).column("key").combine_chunks()
