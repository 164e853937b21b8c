"""The lake's tables as Delta Lake tables (delta-rs): create, commit a run's files exactly once, read.

feedlake writes its data files itself (deterministic keys, through the lake's object store, so a
crash leaves only files the run's intent lists) and then commits them with one Delta commit per
table. Each commit carries the application transaction ``feedlake`` at a version one above the
table's last, chosen under the lake's lease: a retry or a recovery that finds the table at that
version or later knows the commit landed and does not make it again (delta-rs records application
transactions but does not enforce them; this module checks before every commit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction

from feedlake.schemas.article import PARTITION_FIELD, SCHEMA_VERSION, table_schema
from feedlake.schemas.validation import VALIDATION_PARTITION_FIELD
from feedlake.tasks.errors import DamagedObjectError, StoreError, StoreTransientError, bug_reason
from feedlake.tasks.lake.layout import DELTA_LOG, VALIDATION_RESULTS
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import STATS_COLUMNS

# The application id of feedlake's commits (Delta's ``txn`` action).
APP_ID = "feedlake"
# Commit metadata keys: which run made a commit, of what kind, and the report objects it carries.
RUN_ID_KEY = "feedlake.run_id"
KIND_KEY = "feedlake.kind"
REPORTS_KEY = "feedlake.reports"
SCHEMA_VERSION_KEY = "feedlake.schema_version"

# Every table: the change data feed on (incremental readers), a checkpoint every 20 commits and log
# entries older than 30 days cleaned up (opening a table reads one checkpoint and at most 19
# commits, however many runs it has had), and removed files kept 7 days (readers in flight and time
# travel keep working until vacuum).
TABLE_CONFIGURATION = {
    "delta.enableChangeDataFeed": "true",
    "delta.checkpointInterval": "20",
    "delta.logRetentionDuration": "interval 30 days",
    "delta.enableExpiredLogCleanup": "true",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}


def partition_field(table: str) -> pa.Field:
    """The partition column of ``table``: the month of its rows' date."""
    return VALIDATION_PARTITION_FIELD if table == VALIDATION_RESULTS else PARTITION_FIELD


def delta_schema(table: str, row_schema: pa.Schema) -> pa.Schema:
    """The Delta table's schema: ``row_schema`` plus ``table``'s partition column."""
    return table_schema(row_schema, partition_field(table))


def table_configuration(row_schema: pa.Schema) -> dict[str, str]:
    """TABLE_CONFIGURATION plus the columns feedlake writes statistics for."""
    stats = [name for name in STATS_COLUMNS if name in row_schema.names]
    # Declaring them keeps delta-rs from pruning every file on a filter over a column without
    # statistics (delta-rs issue 3173).
    return {**TABLE_CONFIGURATION, "delta.dataSkippingStatsColumns": ",".join(stats)}


@dataclass(frozen=True)
class TableFile:
    """A data file of a table: one a commit adds (with its statistics) or one a version names."""

    key: str
    table: str
    rows: int
    size: int
    partition: Mapping[str, str | None]
    stats: str = ""


def open_table(store: ObjectStore, table: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table ``table`` of the lake (at ``version``, else the latest), or None if none.
    DamagedObjectError names a log entry that is not JSON; other failures are transient."""
    try:
        return DeltaTable(store.uri(table), version=version, storage_options=store.delta_options())
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        # delta-rs appends a Rust backtrace of "<unknown>" frames: not a reason anyone can use.
        reason = bug_reason(exc).split(" 0: <unknown>")[0]
    damaged = (
        damaged_log_entry(store, table) if "json" in reason.lower() or "pars" in reason.lower() else None
    )
    if damaged is not None:
        # Retrying cannot help: a person has to restore or remove that entry.
        raise DamagedObjectError(damaged, f"not a Delta log entry of {store.uri(table)} ({reason})")
    raise StoreTransientError(f"cannot open the Delta table {store.uri(table)}: {reason}")


def damaged_log_entry(store: ObjectStore, table: str) -> str | None:
    """The key of the first commit entry of ``table``'s log that is not JSON lines, if any."""
    for key in store.list(f"{table}/{DELTA_LOG}/"):
        if not key.endswith(".json"):
            continue
        raw = store.get(key) or b""
        try:
            for line in raw.splitlines():
                if line.strip():
                    json.loads(line)
        except ValueError:
            return key
    return None


def ensure_table(store: ObjectStore, table: str, row_schema: pa.Schema) -> DeltaTable:
    """Open ``table``, creating it (version 0, no rows) with ``row_schema`` plus the partition column."""
    found = open_table(store, table)
    if found is not None:
        return found
    try:
        return DeltaTable.create(
            store.uri(table),
            delta_schema(table, row_schema),
            mode="ignore",
            partition_by=[partition_field(table).name],
            name=table.strip("_"),
            description=f"feedlake {table.strip('_')} (article schema version {SCHEMA_VERSION})",
            configuration=table_configuration(row_schema),
            storage_options=store.delta_options(),
            commit_properties=CommitProperties(
                custom_metadata={KIND_KEY: "create", SCHEMA_VERSION_KEY: SCHEMA_VERSION}
            ),
        )
    except (DeltaError, OSError) as exc:
        raise StoreTransientError(
            f"cannot create the Delta table {store.uri(table)}: {bug_reason(exc)}"
        ) from None


def committed_version(store: ObjectStore, table: str) -> int:
    """The last feedlake application transaction version of ``table`` (0 for none or no table)."""
    found = open_table(store, table)
    return 0 if found is None else found.transaction_version(APP_ID) or 0


def commit_files(
    store: ObjectStore,
    table: str,
    row_schema: pa.Schema,
    version: int,
    added: Sequence[TableFile],
    removed: Sequence[TableFile],
    metadata: Mapping[str, str],
    data_change: bool = True,
    opened: DeltaTable | None = None,
) -> int | None:
    """Commit ``added`` and ``removed`` to ``table`` as application transaction ``version``, unless
    the table is there already; the table version this call made, or None if it made none.
    ``data_change`` False marks a rewrite of the same rows (compaction): change-data-feed readers
    skip it. ``opened`` is a handle of the table at its latest version, if the caller has one
    (under the lease nothing else commits, so it saves opening the table again)."""
    delta = opened if opened is not None else ensure_table(store, table, row_schema)
    if (delta.transaction_version(APP_ID) or 0) >= version:
        return None
    now = int(time.time() * 1000)
    prefix = f"{table}/"
    actions: list[AddAction | RemoveAction] = [
        AddAction(f.key.removeprefix(prefix), f.size, dict(f.partition), now, data_change, f.stats or "{}")
        for f in added
    ]
    actions += [
        RemoveAction(f.key.removeprefix(prefix), data_change, now, f.size, dict(f.partition)) for f in removed
    ]
    properties = CommitProperties(
        app_transactions=[Transaction(APP_ID, version)], custom_metadata=dict(metadata)
    )
    try:
        delta.create_write_transaction(
            actions,
            "append",
            delta_schema(table, row_schema),
            partition_by=[partition_field(table).name],
            commit_properties=properties,
        )
    except (DeltaError, OSError) as exc:
        # The commit may have landed before the error (a lost response): the version says.
        if committed_version(store, table) >= version:
            return None
        raise StoreTransientError(
            f"cannot commit to the Delta table {store.uri(table)}: {bug_reason(exc)}"
        ) from None
    # The handle still shows the version it was opened at: read the log's new entries.
    delta.update_incremental()
    return delta.version()


def live_files(store: ObjectStore, table: str) -> list[TableFile]:
    """The data files the latest version of ``table`` names (none if there is no table)."""
    delta = open_table(store, table)
    if delta is None:
        return []
    actions = pa.table(delta.get_add_actions(flatten=True))
    partition_columns = [c for c in actions.column_names if c.startswith("partition.")]
    files = []
    for row in actions.to_pylist():
        partition = {c.removeprefix("partition."): row[c] for c in partition_columns}
        files.append(
            TableFile(
                f"{table}/{row['path']}",
                table,
                int(row["num_records"] or 0),
                int(row["size_bytes"]),
                partition,
            )
        )
    return sorted(files, key=lambda f: f.key)


def read_rows(
    store: ObjectStore,
    table: str,
    row_schema: pa.Schema,
    columns: Sequence[str] | None = None,
    source_id: str | None = None,
) -> pa.Table:
    """The rows of ``table``'s latest version (of one source), as ``row_schema`` (or ``columns``)."""
    delta = open_table(store, table)
    names = list(columns) if columns is not None else row_schema.names
    if delta is None:
        return delta_schema(table, row_schema).empty_table().select(names)
    try:
        dataset = delta.to_pyarrow_dataset()
        where = None if source_id is None else pc.field("source_id") == source_id
        rows = dataset.to_table(columns=names, filter=where)
    except (pa.ArrowException, DeltaError, OSError) as exc:
        raise StoreError(f"cannot read the Delta table {store.uri(table)}: {bug_reason(exc)}") from None
    if columns is None:
        return rows.cast(row_schema)
    return rows


def commit_history(store: ObjectStore, table: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's commits, newest first (at most ``limit``), as delta-rs reports them."""
    delta = open_table(store, table)
    return [] if delta is None else list(delta.history(limit))


def reports_of(commit: Mapping[str, Any]) -> list[str]:
    """The report objects a feedlake commit carries in its metadata."""
    raw = commit.get(REPORTS_KEY)
    try:
        value = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return [str(key) for key in value] if isinstance(value, list) else []
