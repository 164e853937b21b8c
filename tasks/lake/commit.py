"""Commit stage: make a run's files visible exactly once, then update state, surviving crashes.

Protocol (each step is one atomic object write):

1. ``_txn/<run>/intent.json`` lists every object the run will create.
2. Data files are written (write-once keys), then ``_txn/<run>/keys.parquet``.
3. ``_commits/<stamp>-<run>.json`` is written last: this is the commit point. Readers that follow
   the contract read only files named in commit records.
4. State (seen index, validators) is applied from the commit, then the ``_txn/<run>/`` folder is
   removed. A seen index that cannot take the keys (damaged, and not rebuildable now) is marked for
   rebuild instead: the source fails at dedup until a rebuild from the table lands, never dedups
   against an index without them.

``recover_lake`` runs at the start of every run under the lease: an intent without a commit is
rolled back (its files deleted), an intent with a commit is rolled forward (state re-applied).
So a kill at any point, followed by a rerun, yields exactly the rows of one clean run.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import row_keys
from feedlake.tasks.errors import DamagedObjectError, FeedlakeError, StoreError, bug_reason
from feedlake.tasks.lake.layout import ARTICLES, COMMITS, QUARANTINE, TXN, commit_key, intent_key, keys_key
from feedlake.tasks.lake.seen_index import (
    is_seen_object,
    mark_seen_for_rebuild,
    merge_seen,
    repair_seen_object,
)
from feedlake.tasks.lake.source_state import set_aside, write_validators
from feedlake.tasks.lake.storage import ObjectStore, decode_json_object
from feedlake.tasks.lake.write import PlannedFile
from feedlake.tasks.values import FeedValidators

log = logging.getLogger(__name__)

# Data files written at once by a commit (each write is mostly waiting: fsync, or an S3 request).
WRITE_THREADS = 16
# Damaged seen objects one read or merge repairs before it gives up (each is one object).
SEEN_REPAIRS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class CommittedFile:
    """A data file named by a commit record."""

    key: str
    source_id: str
    rows: int
    table: str


@dataclass(frozen=True)
class CommitRecord:
    """What one run made visible: its files and the per-source validators it saw."""

    run_id: str
    committed_at: str
    files: tuple[CommittedFile, ...]
    validators: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    keys_object: str | None = None
    removed: tuple[str, ...] = ()
    kind: str = "poll"
    reports: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        """Serialize the record as the commit object's body."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @staticmethod
    def from_json(raw: bytes, key: str = "commit record") -> CommitRecord:
        """Read a commit object's body; DamagedObjectError naming ``key`` if it is not one."""
        try:
            data = json.loads(raw)
            record = CommitRecord(
                run_id=str(data["run_id"]),
                committed_at=str(data["committed_at"]),
                files=tuple(CommittedFile(**f) for f in data["files"]),
                validators=dict(data.get("validators") or {}),
                keys_object=data.get("keys_object"),
                removed=tuple(str(k) for k in data.get("removed") or ()),
                kind=str(data.get("kind", "poll")),
                reports=tuple(str(k) for k in data.get("reports") or ()),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DamagedObjectError(key, f"not a commit record ({bug_reason(exc)})") from None
        if not all(isinstance(f.key, str) and isinstance(f.source_id, str) for f in record.files):
            raise DamagedObjectError(key, "not a commit record (a file without a key or source)")
        return record


def recover_lake(store: ObjectStore) -> list[str]:
    """Roll back uncommitted runs and roll forward committed ones; return what was done."""
    actions: list[str] = []
    intents = [k for k in store.list(f"{TXN}/") if k.endswith("/intent.json")]
    if not intents:
        return actions
    for key in intents:
        run_id = key.split("/")[1]
        raw = store.get(commit_key(run_id))
        if raw is not None:
            try:
                record = CommitRecord.from_json(raw, commit_key(run_id))
            except DamagedObjectError as exc:
                # Its files may be live: roll neither way, and keep the intent for a person.
                actions.append(f"left run {run_id} as it is: {exc}")
                continue
            apply_commit(store, record)
            actions.append(f"rolled forward committed run {run_id}")
        else:
            intent = _read_json(store, key)
            planned_objects = None if intent is None else intent.get("objects")
            if not isinstance(planned_objects, list):
                moved = set_aside(store, key)
                actions.append(
                    f"rolled back run {run_id}: damaged object {key} (not an intent; moved to {moved}), "
                    "so the files it listed, if any, are left in place, named by no commit"
                )
            else:
                objects = [str(o) for o in planned_objects]
                for planned in objects:
                    store.delete(planned)
                actions.append(f"rolled back run {run_id} ({len(objects)} objects)")
        _clear_txn(store, run_id)
    for action in actions:
        log.warning("recovery: %s", action)
    return actions


def commit_run(
    store: ObjectStore,
    run_id: str,
    files: Sequence[tuple[str, PlannedFile]],
    committed_rows: pa.Table,
    validators: Mapping[str, FeedValidators],
    removed: Sequence[str] = (),
    kind: str = "poll",
    reports: Sequence[tuple[str, bytes]] = (),
) -> CommitRecord:
    """Write intent, data files, keys and the commit record, then apply state; return the record.

    ``removed`` names data files the commit replaces (compaction); they are deleted only after the
    commit point, so readers of the commit log see the old set or the new set, never a mix.
    ``reports`` are (key, body) objects such as validation results, committed with the run.
    """
    if not files and committed_rows.num_rows == 0 and not validators and not removed and not reports:
        # Nothing changed (every feed answered 304 or failed): a run that learned nothing writes nothing.
        return CommitRecord(run_id=run_id, committed_at=datetime.now(UTC).isoformat(), files=())
    objects = [planned.key for _, planned in files] + [key for key, _ in reports] + [keys_key(run_id)]
    store.put(intent_key(run_id), json.dumps({"run_id": run_id, "objects": objects}).encode())
    try:
        planned = CommitRecord(
            run_id=run_id,
            committed_at="",
            files=tuple(CommittedFile(p.key, p.source_id, p.rows, table) for table, p in files),
            validators={k: {"etag": v.etag, "last_modified": v.last_modified} for k, v in validators.items()},
            keys_object=keys_key(run_id) if committed_rows.num_rows else None,
            removed=tuple(removed),
            kind=kind,
            reports=tuple(key for key, _ in reports),
        )
        bodies = list(reports)
        if planned.keys_object is not None:
            bodies.append((planned.keys_object, _keys_object(committed_rows)))
        record = _write_and_publish(store, planned, files, bodies)
    except FeedlakeError:
        _roll_back_failed_run(store, run_id, objects)
        raise
    apply_commit(store, record)
    _clear_txn(store, run_id)
    log.info("commit: run %s, %d files, %d rows", run_id, len(files), committed_rows.num_rows)
    return record


def _write_and_publish(
    store: ObjectStore,
    record: CommitRecord,
    files: Sequence[tuple[str, PlannedFile]],
    bodies: list[tuple[str, bytes]],
) -> CommitRecord:
    # Write-once: a key already present holds the same rows (keys are digests of row keys). A
    # first poll of many feeds writes thousands of small files: each waits on an fsync or an S3
    # round trip, so they go out together. All are done (or the run fails) before the record.
    with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="feedlake-write") as pool:
        pending = [pool.submit(store.put_if_absent, planned.key, planned.data) for _, planned in files]
        for future in pending:
            future.result()
    for key, body in bodies:
        store.put(key, body)
    record = replace(record, committed_at=datetime.now(UTC).isoformat())
    if not store.put_if_absent(commit_key(record.run_id), record.to_json()):
        # A retry after the commit point: the first record stands, and applying it is idempotent.
        existing = store.get(commit_key(record.run_id))
        if existing is None:
            raise StoreError(f"commit record for run {record.run_id} exists but cannot be read")
        record = CommitRecord.from_json(existing, commit_key(record.run_id))
    return record


def _keys_object(committed_rows: pa.Table) -> bytes:
    """The run's row keys per source, as the Parquet object recovery and the seen index read."""
    keys_table = pa.table({"source_id": committed_rows.column("source_id"), "key": row_keys(committed_rows)})
    buffer = io.BytesIO()
    pq.write_table(keys_table, buffer, compression="zstd")
    return buffer.getvalue()


def _roll_back_failed_run(store: ObjectStore, run_id: str, objects: Sequence[str]) -> None:
    # A run that failed before its commit point cleans up at once, so even plain readers of the
    # table see nothing of it. If the commit record may exist, or the store cannot tell, leave all
    # to the next run's recovery: deleting files a commit names would lose data.
    try:
        if store.get(commit_key(run_id)) is not None:
            return
        for key in objects:
            store.delete(key)
        store.delete(intent_key(run_id))
        log.warning(
            "run %s failed before its commit point; its %d objects were removed", run_id, len(objects)
        )
    except FeedlakeError as exc:
        log.warning("run %s: cleanup failed (%s); the next run will recover the lake", run_id, exc)


def apply_commit(store: ObjectStore, record: CommitRecord) -> None:
    """Bring state up to date with a commit record; safe to repeat."""
    updates: list[Callable[[], object]] = []
    if record.keys_object:
        raw = store.get(record.keys_object)
        if raw is not None:
            try:
                by_source = _keys_by_source(pq.read_table(io.BytesIO(raw)))
            except (pa.ArrowException, KeyError, OSError) as exc:
                # The keys are also in the files this commit names: read each source's from those.
                log.warning(
                    "damaged object %s (%s); reading keys from the run's files", record.keys_object, exc
                )
                sources = sorted({f.source_id for f in record.files})
                updates += [
                    partial(
                        _merge_or_mark,
                        store,
                        source_id,
                        partial(_file_keys, store, [f for f in record.files if f.source_id == source_id]),
                    )
                    for source_id in sources
                ]
            else:
                updates += [partial(_merge_or_mark, store, s, partial(_given, keys)) for s, keys in by_source]
    for source_id, value in record.validators.items():
        validators = {
            source_id: FeedValidators(etag=value.get("etag"), last_modified=value.get("last_modified"))
        }
        updates.append(partial(write_validators, store, validators, record.run_id))
    # Each source's state is its own objects: a poll of a thousand sources updates them together.
    with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="feedlake-state") as pool:
        for future in [pool.submit(update) for update in updates]:
            future.result()
    for key in record.removed:
        store.delete(key)


def _keys_by_source(keys: pa.Table) -> list[tuple[str, pa.Array]]:
    # One sort, then a slice per source (not a filter over every key per source).
    ordered = keys.sort_by("source_id")
    sources = ordered.column("source_id").combine_chunks()
    column = ordered.column("key").combine_chunks()
    if len(sources) == 0:
        return []
    changed = pc.not_equal(sources.slice(1), sources.slice(0, len(sources) - 1))
    starts = [0, *(pc.indices_nonzero(changed).to_numpy() + 1).tolist(), len(sources)]
    return [
        (str(sources[start].as_py()), column.slice(start, stop - start))
        for start, stop in zip(starts, starts[1:], strict=False)
    ]


def _given(keys: pa.Array) -> pa.Array:
    return keys


def _merge_or_mark(store: ObjectStore, source_id: str, keys: Callable[[], pa.Array]) -> None:
    """Merge a commit's keys into a source's seen index, repairing damaged index objects from the
    table; if they cannot reach it, mark the index for rebuild."""
    try:
        new = keys()
        with_seen_repaired(store, source_id, partial(merge_seen, store, source_id, new))
    except DamagedObjectError as exc:
        # The rows are committed but their keys may be in no index object: the mark makes every read
        # of the index fail (that source fails, the others go on) until a rebuild from the table
        # lands. Until the mark lands, the intent stays and recovery applies this commit again.
        mark_seen_for_rebuild(store, source_id, exc.reason)
        log.warning("seen index of %s marked for rebuild: %s", source_id, exc)


def with_seen_repaired(
    store: ObjectStore,
    source_id: str,
    step: Callable[[], T],
    split_at: int | None = None,
    on_repair: Callable[[DamagedObjectError, str | None, int], None] | None = None,
) -> T:
    """Run ``step`` (a read or merge of a source's seen index); each damaged index object it meets
    is replaced by its rebuild from the table's keys, then ``step`` runs again.

    ``on_repair`` hears of each repair: the error met, where the damaged bytes were copied and how
    many committed keys the rebuild used. A rebuild that cannot be done (a damaged data file or
    commit record, a store error) raises DamagedObjectError naming the index object, left in place.
    """
    committed: pa.Array | None = None
    for _ in range(SEEN_REPAIRS):
        try:
            return step()
        except DamagedObjectError as exc:
            if not is_seen_object(source_id, exc.key):
                raise
            damaged = exc
        try:
            committed = committed_row_keys(store, source_id) if committed is None else committed
            copy = repair_seen_object(store, source_id, damaged.key, committed, split_at)
        except FeedlakeError as exc:
            raise DamagedObjectError(
                damaged.key,
                f"{damaged.detail}; left in place, since it cannot be rebuilt from the table now ({exc})",
                source_id=source_id,
            ) from exc
        log.warning(
            "source %s: %s; copied to %s, replaced by its rebuild from %d committed row keys",
            source_id,
            damaged.reason,
            copy,
            len(committed),
        )
        if on_repair is not None:
            on_repair(damaged, copy, len(committed))
    return step()


def committed_row_keys(store: ObjectStore, source_id: str) -> pa.Array:
    """The row keys of every live file of a source (articles and quarantine): what its seen index
    must hold. DamagedObjectError names a commit record or data file that cannot be read."""
    files = [
        f for table in (ARTICLES, QUARANTINE) for f in live_files(store, table) if f.source_id == source_id
    ]
    return _file_keys(store, files)


def _file_keys(store: ObjectStore, files: Sequence[CommittedFile]) -> pa.Array:
    parts = [pa.array([], pa.string())]
    for committed in files:
        raw = store.get(committed.key)
        if raw is None:
            # Its rows are not in the table either: taking them in again duplicates nothing.
            continue
        try:
            rows = pq.ParquetFile(pa.BufferReader(raw)).read(columns=["article_id", "content_hash"])
        except (pa.ArrowException, KeyError, OSError) as exc:
            raise DamagedObjectError(committed.key, f"not a readable data file ({exc})") from None
        parts.append(row_keys(rows))
    return pa.concat_arrays(parts).unique()


def live_files(store: ObjectStore, table: str = ARTICLES) -> list[CommittedFile]:
    """The data files of ``table`` that the commit log says are live: the reader's contract."""
    live: dict[str, CommittedFile] = {}
    for record in list_commits(store):
        for key in record.removed:
            live.pop(key, None)
        for committed in record.files:
            if committed.table == table:
                live[committed.key] = committed
    return sorted(live.values(), key=lambda f: f.key)


def list_commits(store: ObjectStore) -> list[CommitRecord]:
    """Return every commit record in commit order; DamagedObjectError names one that cannot be read."""
    records = []
    for key in store.list(f"{COMMITS}/"):
        raw = store.get(key)
        if raw is not None:
            records.append(CommitRecord.from_json(raw, key))
    return records


def _clear_txn(store: ObjectStore, run_id: str) -> None:
    # The intent goes last: while it exists, recovery still knows what this run touched.
    for key in store.list(f"{TXN}/{run_id}/"):
        if not key.endswith("intent.json"):
            store.delete(key)
    store.delete(intent_key(run_id))


def _read_json(store: ObjectStore, key: str) -> dict[str, object] | None:
    raw = store.get(key)
    return None if raw is None else decode_json_object(raw)
