"""Dedup stage: drop rows the lake already holds and repeats within the batch.

A row is new when its row key, the (article_id, content_hash) pair, is not in the source's seen
index: an edited article (same id, new hash) is new, a re-fetched unchanged one is a duplicate. The
same holds within one batch: an identical repeat (same id and hash) counts once, but two entries of
one document with one id and different content are both kept, as two versions of that article (a
feed that lists an item and its edit under one guid). Entries that share only a link are told apart
before this stage, by their article ids (``normalize/articles.py``). The index is per source and
bucketed by article id (``state.read_seen``): a poll reads at most an unsplit root (16,384 keys), a
delta (4,096) and one bucket (up to 4,096) per article it holds, so its cost is bounded by the feed,
never by the source's history or the whole lake.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import row_keys


@dataclass(frozen=True)
class DedupResult:
    """The new rows of a batch and how many were dropped as duplicates."""

    new: pa.RecordBatch
    duplicates: int


def drop_seen(batch: pa.RecordBatch, seen: pa.Array) -> DedupResult:
    """Keep the first row of each row key (each version of an article once), unless ``seen`` holds it."""
    if batch.num_rows == 0:
        return DedupResult(batch, 0)
    keys = row_keys(batch)
    unseen = pc.invert(pc.is_in(keys, value_set=seen)) if len(seen) else pa.array([True] * len(keys))
    keep = pc.and_(unseen, first_of_each(keys))
    new = batch.filter(keep)
    return DedupResult(new, batch.num_rows - new.num_rows)


def first_of_each(values: pa.Array) -> pa.Array:
    """True for each row that is the first with its value, False for later repeats."""
    positions = pa.array(range(len(values)), pa.int64())
    table = pa.table({"key": values, "pos": positions})
    firsts = table.group_by("key", use_threads=False).aggregate([("pos", "min")])
    return pc.is_in(positions, value_set=firsts.column("pos_min"))


def drop_seen_versions(rows: pa.Table, seen: pa.Array) -> pa.Table:
    """Rows whose row key is neither in ``seen`` nor repeated earlier: each distinct version once.

    The backfill rule: snapshots of one feed overlap heavily, and an article edited between two of
    them is a new version, kept whatever order the captures came in.
    """
    keys = row_keys(rows)
    keep = pc.and_(pc.invert(pc.is_in(keys, value_set=seen)), first_of_each(keys))
    # A backfill batch is usually all new: filtering would copy it for nothing.
    if keep.null_count == 0 and pc.all(keep).as_py():
        return rows
    return rows.filter(keep)
