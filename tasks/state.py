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
from tasks.storage import ObjectStore

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


def write_validators(store: ObjectStore, validators: Mapping[str, FeedValidators]) -> None:
    """Store each source's latest validators."""
    for source_id, value in validators.items():
        document = {"etag": value.etag, "last_modified": value.last_modified}
        store.put(feed_state_key(source_id), json.dumps(document, sort_keys=True).encode())


def read_seen(store: ObjectStore, source_id: str) -> pa.Array:
    """Return the row keys (article_id:content_hash) already committed for a source."""
    raw = store.get(seen_key(source_id))
    if raw is None:
        return pa.array([], pa.string())
    return pq.read_table(io.BytesIO(raw)).column("key").combine_chunks()


def merge_seen(store: ObjectStore, source_id: str, keys: pa.Array) -> None:
    """Add keys to a source's seen index (a set union: applying twice is harmless)."""
    current = read_seen(store, source_id)
    merged = pa.concat_arrays([current, keys.cast(pa.string())]).unique()
    buffer = io.BytesIO()
    pq.write_table(pa.table({"key": merged}, schema=SEEN_SCHEMA), buffer, compression="zstd")
    store.put(seen_key(source_id), buffer.getvalue())
