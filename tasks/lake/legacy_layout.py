"""The lake layout before Delta tables (releases up to 449e9d4), read for ``feedlake migrate``.

articles/source_id=<id>/published_date=<YYYY-MM-DD>/part-<digest>.parquet     the articles' files
_quarantine/source_id=<id>/published_date=<YYYY-MM-DD>/part-<digest>.parquet  rejected rows + reasons
_commits/<run_id>.json                  one record per committed run (its commit point)

A table's live files are exactly those its commit records name, replayed in key order (run ids sort
by start time): a record adds its ``files`` and drops the keys in its ``removed`` (a compaction's
replaced files). A data file no record names was left by a run that died before its commit point
and holds no rows. The partition columns ``source_id`` and ``published_date`` are in the path only,
not inside the files; files written before article schema v2 lack its page columns.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA, quarantine_schema
from feedlake.tasks.errors import DamagedObjectError, StoreError, bug_reason
from feedlake.tasks.lake.layout import ARTICLES, LEGACY_COMMITS, QUARANTINE
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)

# The tables of the old layout, and the current row schema each one's rows are read as.
LEGACY_TABLES = (ARTICLES, QUARANTINE)
ROW_SCHEMAS = {ARTICLES: ARTICLE_SCHEMA, QUARANTINE: quarantine_schema(ARTICLE_SCHEMA)}
# The old layout's partition folders, in path order: every data file sits two folders deep.
SOURCE_FOLDER = "source_id="
DATE_FOLDER = "published_date="


@dataclass(frozen=True)
class LegacyFile:
    """A live data file of the old layout, as its commit record names it."""

    key: str
    table: str
    source_id: str
    rows: int


def commit_record_keys(store: ObjectStore) -> list[str]:
    """Every commit record of the old layout, in commit (key) order; none once migrated."""
    return [key for key in store.list(f"{LEGACY_COMMITS}/") if key.endswith(".json")]


def legacy_data_keys(store: ObjectStore, table: str) -> list[str]:
    """Every object in ``table``'s old partition folders, live or not (Delta's files are elsewhere)."""
    return store.list(f"{table}/{SOURCE_FOLDER}")


def live_legacy_files(store: ObjectStore) -> dict[str, list[LegacyFile]]:
    """The live data files of each table, replaying every commit record in order.

    DamagedObjectError names a record that cannot be read: its files may be live, so no reader can
    say which rows the lake holds without it.
    """
    live: dict[str, dict[str, LegacyFile]] = {table: {} for table in LEGACY_TABLES}
    for key in commit_record_keys(store):
        raw = store.get(key)
        if raw is None:
            continue
        added, removed = _parse_record(raw, key)
        for table_files in live.values():
            for gone in removed:
                table_files.pop(gone, None)
        for legacy in added:
            live[legacy.table][legacy.key] = legacy
    return {table: sorted(files.values(), key=lambda f: f.key) for table, files in live.items()}


def _parse_record(raw: bytes, key: str) -> tuple[list[LegacyFile], list[str]]:
    try:
        data = json.loads(raw)
        added = [
            LegacyFile(str(f["key"]), str(f.get("table", ARTICLES)), str(f["source_id"]), int(f["rows"]))
            for f in data["files"]
        ]
        removed = [str(k) for k in data.get("removed") or ()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedObjectError(key, f"not a commit record ({bug_reason(exc)})") from None
    for legacy in added:
        if legacy.table not in ROW_SCHEMAS:
            raise DamagedObjectError(key, f"not a commit record (unknown table {legacy.table!r})")
    return added, removed


def partition_of(key: str) -> tuple[str, date]:
    """The (source_id, published_date) a data file's path names; StoreError if it names none."""
    parts = key.split("/")
    if len(parts) != 4 or not parts[1].startswith(SOURCE_FOLDER) or not parts[2].startswith(DATE_FOLDER):
        raise StoreError(
            f"{key} is not a data file of the old layout (table/source_id=/published_date=/file)"
        )
    try:
        day = date.fromisoformat(parts[2].removeprefix(DATE_FOLDER))
    except ValueError:
        raise StoreError(f"{key}: its published_date folder names no date") from None
    return parts[1].removeprefix(SOURCE_FOLDER), day


def read_legacy_file(raw: bytes, legacy: LegacyFile) -> pa.Table:
    """One data file's rows as its table's current row schema: the partition columns from its path,
    and columns the file predates (schema v1's missing page columns) null."""
    source_id, day = partition_of(legacy.key)
    if source_id != legacy.source_id:
        raise DamagedObjectError(
            legacy.key, f"its path names source {source_id!r}, its commit record {legacy.source_id!r}"
        )
    try:
        rows = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowException, OSError) as exc:
        raise DamagedObjectError(legacy.key, f"not a readable data file ({exc})") from None
    schema = ROW_SCHEMAS[legacy.table]
    unknown = sorted(set(rows.column_names) - set(schema.names))
    if unknown:
        # Dropping them would lose data: the current schema must learn them first.
        raise StoreError(f"{legacy.key} has columns the current schema lacks: {', '.join(unknown)}")
    count = rows.num_rows
    columns = {
        "source_id": pa.array([source_id] * count, pa.string()),
        "published_date": pa.array([day] * count, pa.date32()),
    }
    arrays = []
    for field in schema:
        if field.name in columns:
            arrays.append(columns[field.name])
        elif field.name in rows.column_names:
            arrays.append(_cast(rows.column(field.name), field, legacy.key))
        elif field.nullable:
            arrays.append(pa.nulls(count, field.type))
        else:
            raise DamagedObjectError(legacy.key, f"lacks the required column {field.name}")
    table = pa.Table.from_arrays(arrays, schema=schema)
    if count != legacy.rows:
        log.warning(
            "%s holds %d rows, its commit record says %d; migrating the file's",
            legacy.key,
            count,
            legacy.rows,
        )
    return table


def _cast(column: pa.ChunkedArray, field: pa.Field, key: str) -> pa.ChunkedArray:
    if not field.nullable and column.null_count:
        raise DamagedObjectError(key, f"column {field.name} holds nulls, which the schema forbids")
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DamagedObjectError(key, f"column {field.name} is not {field.type} ({exc})") from None


def read_legacy_rows(store: ObjectStore, files: Sequence[LegacyFile], table: str) -> pa.Table:
    """The rows of ``files`` (live files of ``table``) as that table's current row schema."""
    parts = [ROW_SCHEMAS[table].empty_table()]
    for legacy in files:
        raw = store.get(legacy.key)
        if raw is None:
            raise StoreError(
                f"live file {store.uri(legacy.key)} is missing (a commit record names it); the lake "
                "was changed by hand, so its rows cannot be migrated"
            )
        parts.append(read_legacy_file(raw, legacy))
    return pa.concat_tables(parts)


def read_legacy_tables(store: ObjectStore) -> dict[str, pa.Table]:
    """Every live row of each table of the old layout, as the current row schemas."""
    live = live_legacy_files(store)
    return {table: read_legacy_rows(store, live[table], table) for table in LEGACY_TABLES}
