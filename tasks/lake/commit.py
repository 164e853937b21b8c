"""Commit stage: make a run's files visible exactly once, then update state, surviving crashes.

Protocol (under the lake's lease; each step is one atomic object write or one Delta commit):

1. ``_txn/<run>/intent.json`` holds the whole plan: every object the run will create, the Delta
   ``add``/``remove`` entries of each table it commits to and the application transaction version
   of each (one above the table's last), its validators and its report objects.
2. Data files are written (write-once keys under the table's folder), then the report objects and
   ``_txn/<run>/keys.parquet`` (the run's row keys).
3. One Delta commit per table: quarantine first, then ``articles``, whose commit is the run's commit
   point (it is made even when the run adds no article, and carries the run id, kind and report
   keys in its metadata). A reader of either table sees all of the run's rows in it or none.
4. State (seen index, validators) is applied from the plan, then the ``_txn/<run>/`` folder is
   removed. A seen index that cannot take the keys (damaged, and not rebuildable now) is marked for
   rebuild instead: the source fails at dedup until a rebuild from the table lands.

``recover_lake`` runs at the start of every run under the lease. A plan none of whose tables holds
its transaction version is rolled back (its objects deleted: no file is left under a table that its
log does not name); a plan with any table committed is rolled forward (the other table's commit
made from the plan, then state applied). So a kill at any point, followed by a rerun, yields
exactly the rows of one clean run, and articles and quarantine agree.
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
from deltalake import DeltaTable

from feedlake.schemas.article import ARTICLE_SCHEMA, quarantine_schema, row_keys
from feedlake.schemas.validation import VALIDATION_RESULTS_SCHEMA
from feedlake.tasks.errors import DamagedObjectError, FeedlakeError, bug_reason
from feedlake.tasks.lake.delta_table import (
    APP_ID,
    KIND_KEY,
    REPORTS_KEY,
    RUN_ID_KEY,
    TableFile,
    commit_files,
    committed_version,
    open_table,
    read_rows,
)
from feedlake.tasks.lake.layout import (
    ARTICLES,
    LEGACY_COMMITS,
    QUARANTINE,
    TXN,
    VALIDATION_RESULTS,
    intent_key,
    keys_key,
)
from feedlake.tasks.lake.seen_index import (
    is_seen_object,
    mark_seen_for_rebuild,
    merge_seen,
    repair_seen_object,
)
from feedlake.tasks.lake.source_state import set_aside, write_validators
from feedlake.tasks.lake.storage import ObjectStore, decode_json_object
from feedlake.tasks.lake.write import PlannedFile, plan_validation_file
from feedlake.tasks.values import FeedValidators

log = logging.getLogger(__name__)

# Data files written at once by a commit (each write is mostly waiting: fsync, or an S3 request).
WRITE_THREADS = 16
# Damaged seen objects one read or merge repairs before it gives up (each is one object).
SEEN_REPAIRS = 8
# The row schema of each table, in commit order: a run commits articles last (its commit point).
TABLE_SCHEMAS = {
    QUARANTINE: quarantine_schema(ARTICLE_SCHEMA),
    VALIDATION_RESULTS: VALIDATION_RESULTS_SCHEMA,
    ARTICLES: ARTICLE_SCHEMA,
}
# The tables that hold article rows (what a source's seen index must cover).
ARTICLE_TABLES = (ARTICLES, QUARANTINE)
T = TypeVar("T")


@dataclass(frozen=True)
class CommitRecord:
    """A run's plan, and once committed what it made visible: its files per table, the files it
    replaces, the table versions it commits as, and the per-source validators it saw."""

    run_id: str
    committed_at: str
    files: tuple[TableFile, ...]
    validators: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    keys_object: str | None = None
    removed: tuple[TableFile, ...] = ()
    kind: str = "poll"
    reports: tuple[str, ...] = ()
    versions: Mapping[str, int] = field(default_factory=dict)
    table_versions: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialize the record (the intent's plan)."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @staticmethod
    def from_json(raw: bytes, key: str = "commit plan") -> CommitRecord:
        """Read a plan; DamagedObjectError naming ``key`` if it is not one."""
        try:
            data = json.loads(raw)
            record = CommitRecord(
                run_id=str(data["run_id"]),
                committed_at=str(data["committed_at"]),
                files=tuple(TableFile(**f) for f in data["files"]),
                validators=dict(data.get("validators") or {}),
                keys_object=data.get("keys_object"),
                removed=tuple(TableFile(**f) for f in data.get("removed") or ()),
                kind=str(data.get("kind", "poll")),
                reports=tuple(str(k) for k in data.get("reports") or ()),
                versions={str(t): int(v) for t, v in dict(data.get("versions") or {}).items()},
                table_versions={str(t): int(v) for t, v in dict(data.get("table_versions") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DamagedObjectError(key, f"not a commit plan ({bug_reason(exc)})") from None
        if not all(isinstance(f.key, str) and f.table in TABLE_SCHEMAS for f in record.files):
            raise DamagedObjectError(key, "not a commit plan (a file without a key or table)")
        return record


def recover_lake(store: ObjectStore) -> list[str]:
    """Roll back uncommitted runs and roll forward committed ones; return what was done."""
    actions: list[str] = []
    intents = [k for k in store.list(f"{TXN}/") if k.endswith("/intent.json")]
    for key in intents:
        run_id = key.split("/")[1]
        intent = _read_json(store, key)
        planned_objects = None if intent is None else intent.get("objects")
        record = _plan_of(store, run_id)
        if isinstance(planned_objects, list) and record is None and _never_committed(store, intent, run_id):
            # An intent without a plan (a run of the release before Delta tables that died before
            # its commit record): its objects are rolled back like any uncommitted run's.
            actions.append(_roll_back(store, run_id, planned_objects))
            _clear_txn(store, run_id)
            continue
        if not isinstance(planned_objects, list) or record is None:
            moved = set_aside(store, key)
            actions.append(
                f"rolled back run {run_id}: damaged object {key} (not an intent; moved to {moved}), "
                "so the files it listed, if any, are left in place, named by no table version"
            )
            _clear_txn(store, run_id)
            continue
        if _any_committed(store, record):
            _publish(store, record)
            apply_commit(store, record)
            actions.append(f"rolled forward committed run {run_id}")
        else:
            actions.append(_roll_back(store, run_id, planned_objects))
        _clear_txn(store, run_id)
    for action in actions:
        log.warning("recovery: %s", action)
    return actions


def _roll_back(store: ObjectStore, run_id: str, planned_objects: list[object]) -> str:
    """Delete every object an uncommitted run's intent lists; the recovery action it was."""
    objects = [str(o) for o in planned_objects]
    for planned in objects:
        store.delete(planned)
    return f"rolled back run {run_id} ({len(objects)} objects)"


def commit_run(
    store: ObjectStore,
    run_id: str,
    files: Sequence[tuple[str, PlannedFile]],
    committed_rows: pa.Table,
    validators: Mapping[str, FeedValidators],
    removed: Sequence[TableFile] = (),
    kind: str = "poll",
    reports: Sequence[tuple[str, bytes]] = (),
    validation: pa.Table | None = None,
) -> CommitRecord:
    """Write the plan, data files, keys and reports, commit each table, then apply state.

    ``removed`` names live data files the commit replaces (a quarantine replay): they leave the
    table in the same commit as their replacements arrive, and stay on the store, unnamed, until
    ``vacuum`` (readers of older versions still read them). ``reports`` are (key, body) objects
    such as validation results and raw captures, committed with the run. ``validation`` holds the
    run's rows of the validation results table, committed with it too.
    """
    if validation is not None and validation.num_rows:
        files = [*files, (VALIDATION_RESULTS, plan_validation_file(validation, run_id, len(validation)))]
    if not files and committed_rows.num_rows == 0 and not removed and not reports:
        if validators:
            # No rows: the validators have no data to stay consistent with, and go straight in.
            for source_id, value in validators.items():
                write_validators(store, {source_id: value}, run_id)
        # Nothing else changed (every feed answered 304 or failed): no table version is made.
        return CommitRecord(run_id=run_id, committed_at="", files=(), validators=_plain(validators))
    earlier = _plan_of(store, run_id)
    if earlier is not None and _any_committed(store, earlier):
        # A retry of a run that got past its commit point (its state update failed): finish that
        # commit, never make a second one.
        record = _publish(store, earlier)
        apply_commit(store, record)
        _clear_txn(store, run_id)
        return record
    tables = {table for table, _ in files} | {f.table for f in removed} | {ARTICLES}
    # Each table is opened once per run: its version now, and the handle its commit is made with.
    opened = {table: open_table(store, table) for table in tables}
    record = CommitRecord(
        run_id=run_id,
        committed_at="",
        files=tuple(
            TableFile(p.key, table, p.rows, len(p.data), dict(p.partition), p.stats) for table, p in files
        ),
        validators=_plain(validators),
        keys_object=keys_key(run_id) if committed_rows.num_rows else None,
        removed=tuple(removed),
        kind=kind,
        reports=tuple(key for key, _ in reports),
        versions={table: _app_version(opened[table]) + 1 for table in sorted(tables)},
    )
    objects = [planned.key for _, planned in files] + [key for key, _ in reports] + [keys_key(run_id)]
    intent = {"run_id": run_id, "objects": objects, "record": json.loads(record.to_json())}
    store.put(intent_key(run_id), json.dumps(intent).encode())
    try:
        bodies = list(reports)
        if record.keys_object is not None:
            bodies.append((record.keys_object, _keys_object(committed_rows)))
        _write_objects(store, files, bodies)
        record = _publish(store, record, opened)
    except FeedlakeError:
        _roll_back_failed_run(store, record, objects)
        raise
    apply_commit(store, record)
    _clear_txn(store, run_id)
    log.info("commit: run %s, %d files, %d rows", run_id, len(files), committed_rows.num_rows)
    return record


def _plain(validators: Mapping[str, FeedValidators]) -> dict[str, dict[str, str | None]]:
    return {k: {"etag": v.etag, "last_modified": v.last_modified} for k, v in validators.items()}


def _write_objects(
    store: ObjectStore, files: Sequence[tuple[str, PlannedFile]], bodies: list[tuple[str, bytes]]
) -> None:
    # Write-once: a key already present holds the same rows (keys are digests of row keys). Each
    # write waits on an fsync or an S3 round trip, so they go out together; all are done (or the
    # run fails) before any table commit.
    with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="feedlake-write") as pool:
        pending = [pool.submit(store.put_if_absent, planned.key, planned.data) for _, planned in files]
        for future in pending:
            future.result()
    for key, body in bodies:
        store.put(key, body)


def _app_version(delta: DeltaTable | None) -> int:
    return 0 if delta is None else delta.transaction_version(APP_ID) or 0


def _publish(
    store: ObjectStore, record: CommitRecord, opened: Mapping[str, DeltaTable | None] | None = None
) -> CommitRecord:
    """Make each table's commit the plan names that is not made yet, articles last; idempotent."""
    metadata = {
        RUN_ID_KEY: record.run_id,
        KIND_KEY: record.kind,
        REPORTS_KEY: json.dumps(list(record.reports)),
    }
    made: dict[str, int] = {}
    for table in TABLE_SCHEMAS:
        version = record.versions.get(table)
        if version is None:
            continue
        table_version = commit_files(
            store,
            table,
            TABLE_SCHEMAS[table],
            version,
            [f for f in record.files if f.table == table],
            [f for f in record.removed if f.table == table],
            metadata,
            data_change=record.kind != "compact",
            opened=(opened or {}).get(table),
        )
        if table_version is not None:
            made[table] = table_version
    return replace(record, committed_at=datetime.now(UTC).isoformat(), table_versions=made)


def _plan_of(store: ObjectStore, run_id: str) -> CommitRecord | None:
    """The plan a run's intent holds, if it has a readable one."""
    intent = _read_json(store, intent_key(run_id))
    plan = None if intent is None else intent.get("record")
    if not isinstance(plan, dict):
        return None
    try:
        return CommitRecord.from_json(json.dumps(plan).encode(), intent_key(run_id))
    except DamagedObjectError:
        return None


def _never_committed(store: ObjectStore, intent: Mapping[str, object] | None, run_id: str) -> bool:
    """Whether an intent without a plan belongs to a run that never committed: it has no "record"
    key at all (a damaged plan is not this) and no commit record of the old log names its run."""
    if intent is None or "record" in intent:
        return False
    return store.get(f"{LEGACY_COMMITS}/{run_id}.json") is None


def _any_committed(store: ObjectStore, record: CommitRecord) -> bool:
    return any(committed_version(store, table) >= version for table, version in record.versions.items())


def _keys_object(committed_rows: pa.Table) -> bytes:
    """The run's row keys per source, as the Parquet object recovery and the seen index read."""
    keys_table = pa.table({"source_id": committed_rows.column("source_id"), "key": row_keys(committed_rows)})
    buffer = io.BytesIO()
    pq.write_table(keys_table, buffer, compression="zstd")
    return buffer.getvalue()


def _roll_back_failed_run(store: ObjectStore, record: CommitRecord, objects: Sequence[str]) -> None:
    # A run that failed before its commit point cleans up at once, so even plain readers of the
    # folders see nothing of it. If a table may hold the run, or the store cannot tell, leave all
    # to the next run's recovery: deleting files a table names would lose data.
    try:
        if _any_committed(store, record):
            return
        for key in objects:
            store.delete(key)
        store.delete(intent_key(record.run_id))
        log.warning(
            "run %s failed before its commit point; its %d objects were removed", record.run_id, len(objects)
        )
    except FeedlakeError as exc:
        log.warning("run %s: cleanup failed (%s); the next run will recover the lake", record.run_id, exc)


def apply_commit(store: ObjectStore, record: CommitRecord) -> None:
    """Bring state up to date with a committed run's plan; safe to repeat."""
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
                by_source = _keys_by_source(_files_keys(store, record.files))
                updates += [partial(_merge_or_mark, store, s, partial(_given, keys)) for s, keys in by_source]
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
    table, a store error) raises DamagedObjectError naming the index object, left in place.
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
    """The row keys of every live row of a source (articles and quarantine): what its seen index
    must hold, read from the tables' latest versions."""
    parts = [pa.array([], pa.string())]
    for table in ARTICLE_TABLES:
        schema = TABLE_SCHEMAS[table]
        rows = read_rows(store, table, schema, columns=["article_id", "content_hash"], source_id=source_id)
        parts.append(row_keys(rows))
    return pa.concat_arrays(parts).unique()


def _files_keys(store: ObjectStore, files: Sequence[TableFile]) -> pa.Table:
    """(source_id, key) of every row of a run's data files: its keys object, rebuilt."""
    parts = [pa.table({"source_id": pa.array([], pa.string()), "key": pa.array([], pa.string())})]
    for committed in files:
        raw = store.get(committed.key)
        if raw is None:
            # Its rows are not in the table either: taking them in again duplicates nothing.
            continue
        try:
            rows = pq.ParquetFile(pa.BufferReader(raw)).read(
                columns=["source_id", "article_id", "content_hash"]
            )
        except (pa.ArrowException, KeyError, OSError) as exc:
            raise DamagedObjectError(committed.key, f"not a readable data file ({exc})") from None
        parts.append(pa.table({"source_id": rows.column("source_id"), "key": row_keys(rows)}))
    return pa.concat_tables(parts)


def run_in_flight(store: ObjectStore, run_id: str) -> bool:
    """Whether ``run_id`` still has an intent: in flight, or crashed and not yet recovered. Its
    objects are not committed as far as a reader knows (recovery keeps or deletes them)."""
    return store.get(intent_key(run_id)) is not None


def _clear_txn(store: ObjectStore, run_id: str) -> None:
    # The intent goes last: while it exists, recovery still knows what this run touched.
    for key in store.list(f"{TXN}/{run_id}/"):
        if not key.endswith("intent.json"):
            store.delete(key)
    store.delete(intent_key(run_id))


def _read_json(store: ObjectStore, key: str) -> dict[str, object] | None:
    raw = store.get(key)
    return None if raw is None else decode_json_object(raw)
