"""Commit stage: make a run's files visible exactly once, then update state, surviving crashes.

Protocol (each step is one atomic object write):

1. ``_txn/<run>/intent.json`` lists every object the run will create.
2. Data files are written (write-once keys), then ``_txn/<run>/keys.parquet``.
3. ``_commits/<stamp>-<run>.json`` is written last: this is the commit point. Readers that follow
   the contract read only files named in commit records.
4. State (seen index, validators) is applied from the commit, then the ``_txn/<run>/`` folder is
   removed.

``recover_lake`` runs at the start of every run under the lease: an intent without a commit is
rolled back (its files deleted), an intent with a commit is rolled forward (state re-applied).
So a kill at any point, followed by a rerun, yields exactly the rows of one clean run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.dedup import row_keys
from tasks.errors import LakeBusyError, StoreError
from tasks.fetch import FeedValidators
from tasks.lake_layout import COMMITS, LEASE, TXN, commit_key, intent_key, keys_key
from tasks.state import merge_seen, write_validators
from tasks.storage import ObjectStore
from tasks.write import PlannedFile

log = logging.getLogger(__name__)


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

    def to_json(self) -> bytes:
        """Serialize the record as the commit object's body."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @staticmethod
    def from_json(raw: bytes) -> CommitRecord:
        """Read a commit object's body."""
        data = json.loads(raw)
        return CommitRecord(
            run_id=data["run_id"],
            committed_at=data["committed_at"],
            files=tuple(CommittedFile(**f) for f in data["files"]),
            validators=data.get("validators") or {},
            keys_object=data.get("keys_object"),
        )


def acquire_lease(store: ObjectStore, run_id: str, seconds: float) -> None:
    """Take the lake's lease for this run, or raise LakeBusyError if a live run holds it."""
    now = datetime.now(UTC)
    lease = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "expires_at": (now + timedelta(seconds=seconds)).isoformat(),
    }
    body = json.dumps(lease).encode()
    if store.put_if_absent(LEASE, body):
        return
    holder = _read_json(store, LEASE)
    if holder is not None and not _lease_is_dead(holder, now):
        raise LakeBusyError(
            f"run {holder.get('run_id')} on {holder.get('host')} holds the lake until "
            f"{holder.get('expires_at')}; wait for it or remove {store.uri(LEASE)} if it is gone"
        )
    log.warning("taking over the expired or orphaned lease of run %s", (holder or {}).get("run_id"))
    store.delete(LEASE)
    if not store.put_if_absent(LEASE, body):
        raise LakeBusyError("another run took the lake's lease at the same moment; try again")


def release_lease(store: ObjectStore, run_id: str) -> None:
    """Give the lease back if this run still holds it."""
    holder = _read_json(store, LEASE)
    if holder is not None and holder.get("run_id") == run_id:
        store.delete(LEASE)


def recover_lake(store: ObjectStore) -> list[str]:
    """Roll back uncommitted runs and roll forward committed ones; return what was done."""
    actions: list[str] = []
    intents = [k for k in store.list(f"{TXN}/") if k.endswith("/intent.json")]
    if not intents:
        return actions
    for key in intents:
        run_id = key.split("/")[1]
        intent = _read_json(store, key) or {}
        planned_objects = intent.get("objects")
        objects = [str(o) for o in planned_objects] if isinstance(planned_objects, list) else []
        raw = store.get(commit_key(run_id))
        if raw is not None:
            apply_commit(store, CommitRecord.from_json(raw))
            actions.append(f"rolled forward committed run {run_id}")
        else:
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
) -> CommitRecord:
    """Write intent, data files, keys and the commit record, then apply state; return the record."""
    if not files and committed_rows.num_rows == 0 and not validators:
        # Nothing changed (every feed answered 304 or failed): a run that learned nothing writes nothing.
        return CommitRecord(run_id=run_id, committed_at=datetime.now(UTC).isoformat(), files=())
    objects = [planned.key for _, planned in files] + [keys_key(run_id)]
    store.put(intent_key(run_id), json.dumps({"run_id": run_id, "objects": objects}).encode())
    for _, planned in files:
        # Write-once: a key already present holds the same rows (keys are digests of row keys).
        store.put_if_absent(planned.key, planned.data)
    keys_table = pa.table({"source_id": committed_rows.column("source_id"), "key": row_keys(committed_rows)})
    buffer = io.BytesIO()
    pq.write_table(keys_table, buffer, compression="zstd")
    store.put(keys_key(run_id), buffer.getvalue())
    now = datetime.now(UTC)
    record = CommitRecord(
        run_id=run_id,
        committed_at=now.isoformat(),
        files=tuple(
            CommittedFile(key=p.key, source_id=p.source_id, rows=p.rows, table=table) for table, p in files
        ),
        validators={k: {"etag": v.etag, "last_modified": v.last_modified} for k, v in validators.items()},
        keys_object=keys_key(run_id),
    )
    if not store.put_if_absent(commit_key(run_id), record.to_json()):
        # A retry after the commit point: the first record stands, and applying it is idempotent.
        existing = store.get(commit_key(run_id))
        if existing is None:
            raise StoreError(f"commit record for run {run_id} exists but cannot be read")
        record = CommitRecord.from_json(existing)
    apply_commit(store, record)
    _clear_txn(store, run_id)
    log.info("commit: run %s, %d files, %d rows", run_id, len(files), committed_rows.num_rows)
    return record


def apply_commit(store: ObjectStore, record: CommitRecord) -> None:
    """Bring state up to date with a commit record; safe to repeat."""
    if record.keys_object:
        raw = store.get(record.keys_object)
        if raw is not None:
            keys = pq.read_table(io.BytesIO(raw))
            for source_id in pc.unique(keys.column("source_id")).to_pylist():
                mask = pc.equal(keys.column("source_id"), source_id)
                merge_seen(store, source_id, keys.filter(mask).column("key").combine_chunks())
    write_validators(
        store,
        {
            k: FeedValidators(etag=v.get("etag"), last_modified=v.get("last_modified"))
            for k, v in record.validators.items()
        },
    )


def list_commits(store: ObjectStore) -> list[CommitRecord]:
    """Return every commit record in commit order."""
    records = []
    for key in store.list(f"{COMMITS}/"):
        raw = store.get(key)
        if raw is not None:
            records.append(CommitRecord.from_json(raw))
    return records


def _clear_txn(store: ObjectStore, run_id: str) -> None:
    # The intent goes last: while it exists, recovery still knows what this run touched.
    for key in store.list(f"{TXN}/{run_id}/"):
        if not key.endswith("intent.json"):
            store.delete(key)
    store.delete(intent_key(run_id))


def _read_json(store: ObjectStore, key: str) -> dict[str, object] | None:
    raw = store.get(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _lease_is_dead(holder: Mapping[str, object], now: datetime) -> bool:
    try:
        expires = datetime.fromisoformat(str(holder.get("expires_at")))
    except ValueError:
        return True
    if expires <= now:
        return True
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int):
        # Same machine: a holder whose process is gone (killed, crashed) frees the lake at once.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False
