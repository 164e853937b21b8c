"""The seen index of each source: the (article_id, content_hash) keys committed to the lake.

The seen index of a source starts as one object, ``_state/seen/<source_id>.parquet``, merged in
place. Past ``split_at / 4`` keys (``SEEN_SPLIT_AT`` = 16,384) the root is flagged and new keys go
to a small delta object first, one write per poll whatever the history; the delta is folded into
the root once it passes ``split_at / 4`` keys. Past ``split_at`` keys the root is split into 2^k
buckets by the top k bits of the article id (every version of an article lands in one bucket,
about ``split_at / 8`` keys each) and becomes an empty pointer whose Parquet metadata records k. A
poll reads the root, the delta and only the buckets its article ids fall in. A bucket past
``split_at / 4`` keys grows the index to a higher k the same way, and deletes the level two back
(no reader has needed it since the grow before).

Crash safety: every write is a union (If-Match) of committed keys, so any object, live or orphan,
holds a subset of the committed keys. Keys reach the delta before any fold, and leave it only once
the root or buckets hold them. A new level is written in full before the root is swapped
(If-Match) to point at it; that swap is the one step that makes it live, so a crash before it
leaves the old index in force, and the rerun's unions complete the orphans.

Damage: an object whose bytes do not decode raises ``DamagedObjectError`` naming its key. A
damaged seen object is never removed: ``repair_seen_object``
copies its bytes aside, then replaces it, in one If-Match write, by what it must hold given every
committed key of the source (read from the table by ``commit.with_seen_repaired``). Until that
write lands the damaged object stays in force and every read of it fails, so a rebuild that fails
or is killed can never leave an index that forgets committed rows. When a commit's keys cannot
reach a damaged index, ``mark_seen_for_rebuild`` marks the root (metadata ``REBUILD_META``): a
marked root reads as damaged, so the source is rebuilt from the table before it is deduplicated
again.
"""

from __future__ import annotations

import hashlib
import io
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.tasks.errors import DamagedObjectError, StoreTransientError
from feedlake.tasks.lake.layout import (
    seen_bucket_key,
    seen_bucket_of,
    seen_delta_key,
    seen_key,
)
from feedlake.tasks.lake.source_state import keep_damaged_copy
from feedlake.tasks.lake.storage import MAX_CAS_ATTEMPTS, ObjectStore, replace_if_match, update_object

SEEN_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False)])
SEEN_SPLIT_AT = 16_384
# Requests in flight at once: on S3 each bucket is a round trip, so a poll waits for a few, not for
# dozens. The threads only move bytes; decoding stays in the calling thread, so memory stays low.
SEEN_THREADS = 8
SEEN_BATCH = 4 * SEEN_THREADS
LEVEL_META = b"feedlake.seen.buckets_log2"
PREVIOUS_META = b"feedlake.seen.previous_log2"
DELTA_META = b"feedlake.seen.delta"
REBUILD_META = b"feedlake.seen.rebuild"
_HEX_ID = r"^[0-9a-f]{32}$"
_NIBBLES = np.zeros(256, np.uint64)
_NIBBLES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint64)
_SHIFTS = np.arange(28, -1, -4, dtype=np.uint64)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Root:
    """A source's root seen object: its keys while unsplit, else the level (k) it points at."""

    etag: str | None
    raw: bytes | None
    level: int = 0
    previous: int = 0
    flagged: bool = False  # big enough for new keys to go to the delta first
    key: str = ""

    @cached_property
    def keys(self) -> pa.Array:
        """The keys an unsplit root holds, decoded only when asked for: a merge into a big index
        reads the root's footer, never its thousands of keys."""
        return (
            _decode(self.raw, self.key)
            if self.raw is not None and self.level == 0
            else pa.array([], pa.string())
        )

    @property
    def has_delta(self) -> bool:
        """Whether readers must read the delta too: once true, true for good."""
        return self.flagged or self.level > 0


def read_seen(store: ObjectStore, source_id: str, article_ids: pa.Array | None = None) -> pa.Array:
    """Return a source's committed row keys (article_id:content_hash): all of them, or at least every
    key of ``article_ids``, reading only the buckets those fall in."""
    root = _read_root(store, source_id)
    wanted = None if article_ids is None else article_ids.cast(pa.string()).unique()
    found = [root.keys]
    if root.has_delta:
        delta = seen_delta_key(source_id)
        raw = store.get(delta)
        found.append(_only(_decode(raw, delta), wanted) if raw is not None else pa.array([], pa.string()))
    if root.level > 0:
        wanted_in = _ids_by_bucket(wanted, root.level)
        numbers = range(1 << root.level) if wanted_in is None else sorted(wanted_in)
        for batch in _batches(list(numbers)):
            keys = [seen_bucket_key(source_id, root.level, n) for n in batch]
            raws = _each(store.get, keys)
            # Each bucket is filtered by its own ids only: a backfill batch holds thousands, and
            # one set of all of them rebuilt per bucket would cost more than the read.
            found += [
                _only(_decode(raw, key), None if wanted_in is None else wanted_in[n])
                for n, key, raw in zip(batch, keys, raws, strict=True)
                if raw is not None
            ]
    return _concat(found)


def merge_seen(store: ObjectStore, source_id: str, keys: pa.Array, split_at: int | None = None) -> None:
    """Add keys to a source's seen index (split into buckets past ``split_at`` keys, default
    ``SEEN_SPLIT_AT``); every write is a union with If-Match: safe to repeat, safe against a
    concurrent writer."""
    split_at = _split_at(split_at)
    new = keys.cast(pa.string()).unique()
    if len(new) == 0:
        return
    for _ in range(MAX_CAS_ATTEMPTS):
        root = _read_root(store, source_id)
        if root.has_delta:
            break
        # A small index is one object, merged in place.
        if _merge_into_root(store, source_id, root, new, split_at):
            return
    else:
        raise StoreTransientError(f"seen index of {source_id} kept changing under this run; try again")
    # A big index takes new keys into its delta (one small write per poll, whatever the history)
    # and folds the delta into the root or buckets once it passes split_at / 4 keys.
    if _union_object(store, seen_delta_key(source_id), new, f"seen delta of {source_id}") > split_at // 4:
        _fold(store, source_id, split_at)


def _fold(store: ObjectStore, source_id: str, split_at: int) -> None:
    """Move the delta's keys into the root or buckets, then drop them from the delta."""
    delta = seen_delta_key(source_id)
    raw = store.get(delta)
    if raw is None:
        return
    folded = _decode(raw, delta)
    _merge_into_base(store, source_id, folded, split_at)

    def drop_folded(current: bytes | None) -> bytes | None:
        # Keys a concurrent writer added meanwhile stay; a crash before this write leaves the keys
        # in both places, which readers do not mind and the next fold tidies.
        if current is None:
            return None
        known = _decode(current, delta)
        rest = known.filter(pc.invert(pc.is_in(known, folded)))
        return None if len(rest) == len(known) else _encode(rest)

    update_object(store, seen_delta_key(source_id), drop_folded, f"seen delta of {source_id}")


def _merge_into_base(store: ObjectStore, source_id: str, new: pa.Array, split_at: int) -> None:
    """Union keys into the root (while unsplit) or into their buckets, splitting or growing."""
    for _ in range(MAX_CAS_ATTEMPTS):
        root = _read_root(store, source_id)
        if root.level == 0:
            if _merge_into_root(store, source_id, root, new, split_at):
                return
            continue
        sizes = _union_into_level(store, source_id, root.level, new)
        if max(sizes) > split_at // 4:
            if _grow(store, source_id, root, sizes, split_at):
                return
        elif _root_etag(store, source_id) == root.etag:
            return
        # The root moved while we wrote (a concurrent split or grow): merge again at its new level.
    raise StoreTransientError(f"seen index of {source_id} kept changing under this run; try again")


def is_seen_object(source_id: str, key: str) -> bool:
    """Whether ``key`` is an object of ``source_id``'s seen index (root, delta or a bucket)."""
    return (
        key in (seen_key(source_id), seen_delta_key(source_id)) or seen_bucket_of(source_id, key) is not None
    )


def repair_seen_object(
    store: ObjectStore, source_id: str, key: str, committed: pa.Array, split_at: int | None = None
) -> str | None:
    """Replace a damaged (or marked) object of a source's seen index by what it must hold, given
    ``committed``: every committed row key of the source. Return where its bytes were copied (None
    if it was sound by now, or only marked).

    The damaged object is never removed: its bytes are copied aside, then the replacement lands in
    one If-Match write over it. Whatever fails or is killed before that write leaves it damaged, so
    every read of it still fails and the next try starts over; nothing reads a partial index.
    """
    split_at = _split_at(split_at)
    committed = committed.cast(pa.string()).unique()
    bucket = seen_bucket_of(source_id, key)
    if key == seen_key(source_id):

        def rebuilt() -> bytes:
            return _rebuilt_root(store, source_id, committed, split_at)
    elif key == seen_delta_key(source_id):

        def rebuilt() -> bytes:
            # Every committed key: more than a delta needs, never less; the next fold empties it.
            return _encode(committed)
    elif bucket is not None:

        def rebuilt() -> bytes:
            return _encode(_in_bucket(committed, *bucket))
    else:
        raise ValueError(f"{key} is not an object of the seen index of {source_id}")
    copy: str | None = None
    body: bytes | None = None
    for _ in range(MAX_CAS_ATTEMPTS):
        found = store.get_versioned(key)
        if found is None or _is_sound(found[0], key, source_id):
            return copy
        if key != seen_key(source_id) or not _is_marked(found[0]):
            copy = keep_damaged_copy(store, key, found[0])
        body = rebuilt() if body is None else body
        if replace_if_match(store, key, body, found[1]):
            return copy
    raise StoreTransientError(f"seen index of {source_id} kept changing under its repair; try again")


def mark_seen_for_rebuild(store: ObjectStore, source_id: str, reason: str) -> None:
    """Mark a source's seen index for rebuild: from now on every read and merge of it fails as
    damaged (and is repaired from the table first) until a rebuild replaces the root."""
    key = seen_key(source_id)
    body = _encode(pa.array([], pa.string()), {REBUILD_META: reason.encode("utf-8", "replace")[:1024]})

    def mark(current: bytes | None) -> bytes | None:
        # A damaged root already fails every read: it is the mark, and its bytes stay for a person.
        if current is not None and not _is_sound(current, key, source_id):
            return None
        return body

    update_object(store, key, mark, f"seen index of {source_id}")


def _is_sound(raw: bytes, key: str, source_id: str) -> bool:
    try:
        if key == seen_key(source_id):
            _ = _parse_root(raw, None, key).keys
        else:
            _decode(raw, key)
    except DamagedObjectError:
        return False
    return True


def _rebuilt_root(store: ObjectStore, source_id: str, committed: pa.Array, split_at: int) -> bytes:
    """A root holding ``committed``: in itself while small, else in a level written in full first."""
    if len(committed) <= split_at:
        return _encode(committed, {DELTA_META: b"1"} if len(committed) >= split_at // 4 else None)
    level = _level_for(len(committed), split_at)
    # That level's buckets may be the old live ones or orphans: each holds committed keys only, so
    # a union is right; a damaged one among them is replaced the same way as any other.
    for _ in range(1 << level):
        try:
            _union_into_level(store, source_id, level, committed)
            break
        except DamagedObjectError as exc:
            if seen_bucket_of(source_id, exc.key) is None:
                raise
            repair_seen_object(store, source_id, exc.key, committed, split_at)
    else:
        _union_into_level(store, source_id, level, committed)
    # The old level is known only to the damaged root: if it is another one, it stays, unread.
    return _pointer(level, previous=0)


def _in_bucket(keys: pa.Array, level: int, bucket: int) -> pa.Array:
    """The keys whose article id falls in ``bucket`` of 2^``level``."""
    return keys.filter(pa.array(seen_buckets(_key_article_ids(keys), level) == bucket))


def _split_at(split_at: int | None) -> int:
    split_at = SEEN_SPLIT_AT if split_at is None else split_at
    if split_at < 8:
        raise ValueError(f"split_at must be at least 8, not {split_at}")
    return split_at


def seen_buckets(article_ids: pa.Array | pa.ChunkedArray, level: int) -> npt.NDArray[np.int64]:
    """The bucket of each article id among 2^level: the id's top bits (its hash's if it is not hex)."""
    return (_id_hashes(article_ids) >> np.uint64(32 - level)).astype(np.int64)


def _merge_into_root(store: ObjectStore, source_id: str, root: _Root, new: pa.Array, split_at: int) -> bool:
    merged = _union(root.keys, new)
    if root.etag is not None and len(merged) == len(root.keys):
        return True  # nothing new: a replay after a crash
    if len(merged) <= split_at:
        # Past split_at / 4 keys the root is flagged: from then on new keys go to the delta first.
        flag = {DELTA_META: b"1"} if root.flagged or len(merged) >= split_at // 4 else None
        return replace_if_match(store, seen_key(source_id), _encode(merged, flag), root.etag)
    level = _level_for(len(merged), split_at)
    _union_into_level(store, source_id, level, merged)
    return _point_root(store, source_id, root.etag, level, previous=0)


def _grow(store: ObjectStore, source_id: str, root: _Root, sizes: list[int], split_at: int) -> bool:
    """Copy every bucket to a higher level, then point the root at it; False if the root moved."""
    # The buckets just written stand for all of them: grow until they would be back near the target.
    steps = max(1, math.ceil(math.log2(statistics.mean(sizes) / (split_at // 8))))
    level = min(32, root.level + steps)
    old = [seen_bucket_key(source_id, root.level, n) for n in range(1 << root.level)]
    copied: dict[str, str] = {}
    # Each old bucket's keys land in its own 2^steps children: one batch of old buckets at a time.
    for batch in _batches(old):
        found = _each(store.get_versioned, batch)
        copied.update({key: f[1] for key, f in zip(batch, found, strict=True) if f is not None})
        present = [_decode(f[0], key) for key, f in zip(batch, found, strict=True) if f is not None]
        if present:
            _union_into_level(store, source_id, level, _concat(present))
    if not _point_root(store, source_id, root.etag, level, previous=root.level):
        return False
    # A writer that lost its lease may have added keys to the old level while it was copied; any
    # later writer sees the new root when it checks, and merges again there.
    for batch in _batches(old):
        found = _each(store.get_versioned, batch)
        late = [
            _decode(f[0], key)
            for key, f in zip(batch, found, strict=True)
            if f is not None and copied.get(key) != f[1]
        ]
        if late:
            _union_into_level(store, source_id, level, _concat(late))
    if root.previous:
        # Two levels back: no reader that started after the last swap can still be reading it.
        for batch in _batches(
            [seen_bucket_key(source_id, root.previous, n) for n in range(1 << root.previous)]
        ):
            _each(store.delete, batch)
    return True


def _union_into_level(store: ObjectStore, source_id: str, level: int, keys: pa.Array) -> list[int]:
    """Union keys into their buckets at ``level``; return the size of each bucket they touch."""
    numbers = seen_buckets(_key_article_ids(keys), level)
    order = np.argsort(numbers, kind="stable")
    numbers = numbers[order]
    grouped = keys.take(pa.array(order))
    starts = [0, *(np.flatnonzero(np.diff(numbers)) + 1).tolist()]
    ends = [*starts[1:], len(numbers)]
    parts = [
        (seen_bucket_key(source_id, level, int(numbers[s])), grouped.slice(s, e - s))
        for s, e in zip(starts, ends, strict=True)
    ]
    sizes = []
    for batch in _batches(parts):
        current = _each(store.get_versioned, [key for key, _ in batch])
        writes = []
        for (key, new), found in zip(batch, current, strict=True):
            known = pa.array([], pa.string()) if found is None else _decode(found[0], key)
            merged = _union(known, new)
            if found is None or len(merged) > len(known):
                writes.append((key, _encode(merged), None if found is None else found[1], new, len(merged)))
            else:
                sizes.append(len(merged))  # nothing new: a replay after a crash
        landed = _each(lambda write: replace_if_match(store, write[0], write[1], write[2]), writes)
        for (key, _, _, new, size), won in zip(writes, landed, strict=True):
            # Lost to a concurrent writer: merge that bucket again, the slow way.
            sizes.append(size if won else _union_object(store, key, new, f"seen index of {source_id}"))
    return sizes


def _union_object(store: ObjectStore, key: str, keys: pa.Array, what: str) -> int:
    """Union keys into one object (If-Match), creating it if absent; return its size."""
    size = 0

    def union(current: bytes | None) -> bytes | None:
        nonlocal size
        known = _decode(current, key) if current is not None else pa.array([], pa.string())
        merged = _union(known, keys)
        size = len(merged)
        return None if current is not None and len(merged) == len(known) else _encode(merged)

    update_object(store, key, union, what)
    return size


def _point_root(store: ObjectStore, source_id: str, etag: str | None, level: int, previous: int) -> bool:
    return replace_if_match(store, seen_key(source_id), _pointer(level, previous), etag)


def _pointer(level: int, previous: int) -> bytes:
    metadata = {LEVEL_META: str(level).encode(), PREVIOUS_META: str(previous).encode()}
    return _encode(pa.array([], pa.string()), metadata)


def _read_root(store: ObjectStore, source_id: str) -> _Root:
    key = seen_key(source_id)
    found = store.get_versioned(key)
    return _Root(None, None, key=key) if found is None else _parse_root(found[0], found[1], key)


def _parse_root(raw: bytes, etag: str | None, key: str) -> _Root:
    """A root object's level and flags; DamagedObjectError if it is not one, or is marked for rebuild."""
    try:
        schema = pq.ParquetFile(pa.BufferReader(raw)).schema_arrow
        metadata = schema.metadata or {}
        level, previous = int(metadata.get(LEVEL_META, b"0")), int(metadata.get(PREVIOUS_META, b"0"))
    except (pa.ArrowException, ValueError) as exc:
        raise DamagedObjectError(key, f"not a seen index ({type(exc).__name__}: {exc})") from None
    if schema.names != ["key"] or not 0 <= level <= 32 or not 0 <= previous < max(level, 1):
        raise DamagedObjectError(key, "not a seen index (unexpected columns or level)")
    if REBUILD_META in metadata:
        reason = metadata[REBUILD_META].decode("utf-8", "replace")
        raise DamagedObjectError(key, f"marked for rebuild from the table ({reason})")
    return _Root(etag, raw, level, previous, DELTA_META in metadata, key)


def _is_marked(raw: bytes) -> bool:
    """Whether a root object is a sound one carrying the rebuild mark (not damaged bytes)."""
    try:
        metadata = pq.ParquetFile(pa.BufferReader(raw)).schema_arrow.metadata or {}
    except (pa.ArrowException, ValueError):
        return False
    return REBUILD_META in metadata


def _root_etag(store: ObjectStore, source_id: str) -> str | None:
    found = store.get_versioned(seen_key(source_id))
    return None if found is None else found[1]


def _level_for(count: int, split_at: int) -> int:
    """The smallest k (at least 1) that spreads ``count`` keys to ``split_at / 8`` or fewer a bucket."""
    level = 1
    while count > (split_at // 8) << level and level < 32:
        level += 1
    return level


def _id_hashes(article_ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.uint64]:
    # Article ids are blake2b hex digests: their first 8 hex digits are already uniform. Anything
    # else (test ids, a future id scheme) is hashed, so buckets stay even whatever the ids look like.
    ids = article_ids.combine_chunks() if isinstance(article_ids, pa.ChunkedArray) else article_ids
    ids = pc.fill_null(ids.cast(pa.string()), "")
    hexlike = pc.match_substring_regex(ids, _HEX_ID)
    heads = pc.utf8_slice_codeunits(pc.if_else(hexlike, ids, "00000000"), 0, 8).cast(pa.binary())
    fixed = heads.cast(pa.binary(8))
    raw = np.frombuffer(fixed.buffers()[1], np.uint8)[fixed.offset * 8 : (fixed.offset + len(fixed)) * 8]
    hashes: npt.NDArray[np.uint64] = (_NIBBLES[raw.reshape(-1, 8)] << _SHIFTS).sum(axis=1, dtype=np.uint64)
    others = np.flatnonzero(~hexlike.to_numpy(zero_copy_only=False))
    if len(others):
        for position, value in zip(others, pc.take(ids, pa.array(others)).to_pylist(), strict=True):
            digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=4).digest()
            hashes[position] = int.from_bytes(digest, "big")
    return hashes


def _key_article_ids(keys: pa.Array) -> pa.Array:
    """The article id part of each row key (the content hash after the last colon never has one)."""
    return pc.list_element(pc.split_pattern(keys, ":", max_splits=1, reverse=True), 0)


def _ids_by_bucket(article_ids: pa.Array | None, level: int) -> dict[int, pa.Array] | None:
    """The ids that fall in each bucket of ``level`` (None: no ids given, every bucket is wanted)."""
    if article_ids is None:
        return None
    buckets = seen_buckets(article_ids, level)
    order = np.argsort(buckets, kind="stable")
    numbers, starts = np.unique(buckets[order], return_index=True)
    ends = [*starts[1:].tolist(), len(order)]
    return {
        int(n): article_ids.take(pa.array(order[start:end]))
        for n, start, end in zip(numbers.tolist(), starts.tolist(), ends, strict=True)
    }


def _only(keys: pa.Array, article_ids: pa.Array | None) -> pa.Array:
    """The keys of ``article_ids`` (all keys if None): a poll holds a few keys, not thousands."""
    return keys if article_ids is None else keys.filter(pc.is_in(_key_article_ids(keys), article_ids))


def _union(known: pa.Array, new: pa.Array) -> pa.Array:
    return pa.concat_arrays([known, new]).unique()


def _concat(arrays: Sequence[pa.Array]) -> pa.Array:
    return pa.concat_arrays(list(arrays)) if arrays else pa.array([], pa.string())


def _encode(keys: pa.Array, metadata: dict[bytes, bytes] | None = None) -> bytes:
    schema = SEEN_SCHEMA.with_metadata(metadata) if metadata else SEEN_SCHEMA
    buffer = io.BytesIO()
    # Keys are unique digests: a dictionary would only cost time.
    pq.write_table(pa.table({"key": keys}, schema=schema), buffer, compression="zstd", use_dictionary=False)
    return buffer.getvalue()


def _read_parquet(raw: bytes) -> pa.Table:
    # ParquetFile, not read_table: a poll that reads no other Parquet need not load pyarrow.dataset.
    return pq.ParquetFile(pa.BufferReader(raw)).read(use_threads=False)


def _decode(raw: bytes, key: str) -> pa.Array:
    """The keys a seen object holds; DamagedObjectError naming ``key`` if its bytes are not one."""
    try:
        table = _read_parquet(raw)
        if table.schema.names != ["key"] or table.schema.field("key").type != pa.string():
            raise ValueError(f"columns {table.schema}")
        return table.column("key").combine_chunks()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise DamagedObjectError(key, f"not a seen index ({type(exc).__name__}: {exc})") from None


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` a few dozen at a time, so a large index is never held in memory at once."""
    for start in range(0, len(items), SEEN_BATCH):
        yield items[start : start + SEEN_BATCH]


def _each(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``function`` (a store request) over ``items``, a few at a time."""
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(SEEN_THREADS, len(items))) as pool:
        return list(pool.map(function, items))
