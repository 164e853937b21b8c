"""Incremental reads: the rows a table's versions after a given one inserted or removed.

The tables keep Delta's change data feed, so a consumer that remembers the last table version it
read asks for what changed since: inserts (new articles, new versions of articles, rows moved in by
a quarantine replay) and deletes (rows a replay moved out). Compaction rewrites rows without
changing them and shows up as nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from feedlake.tasks.errors import StoreError, StoreTransientError, bug_reason
from feedlake.tasks.lake.commit import TABLE_SCHEMAS
from feedlake.tasks.lake.delta_table import delta_schema, open_table
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import ObjectStore

# The change data feed's own columns, in the types every reader handles (delta-rs gives string
# views, unsigned versions and zone-less timestamps).
CHANGE_FIELDS = (
    pa.field("_change_type", pa.string(), nullable=False),
    pa.field("_commit_version", pa.int64(), nullable=False),
    pa.field("_commit_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
)


@dataclass(frozen=True)
class Changes:
    """The changed rows (the table's columns plus ``_change_type``, ``_commit_version``,
    ``_commit_timestamp``) and the table version they run up to: the next ``since_version``."""

    rows: pa.Table
    since_version: int
    latest_version: int


def changes_schema(table: str) -> pa.Schema:
    """The one schema of ``table``'s changes, whether or not any row changed."""
    base = delta_schema(table, TABLE_SCHEMAS[table])
    return pa.schema([*base, *CHANGE_FIELDS], metadata=base.metadata)


def read_changes(store: ObjectStore, since_version: int, table: str = ARTICLES) -> Changes:
    """Rows inserted or deleted in ``table`` by versions after ``since_version`` (-1: all)."""
    delta = open_table(store, table)
    if delta is None:
        raise StoreError(f"{store.uri(table)} is not a Delta table (run feedlake migrate on an older lake)")
    latest = delta.version()
    schema = changes_schema(table)
    if since_version >= latest:
        return Changes(schema.empty_table(), since_version, latest)
    try:
        reader = delta.load_cdf(starting_version=since_version + 1, ending_version=latest)
        rows = pa.table(reader.read_all())
    except Exception as exc:  # noqa: BLE001 - delta-rs raises its own and OSError kinds
        vacuumed = any(
            c.get("operation") == "VACUUM END" and int(c.get("version", -1)) > since_version
            for c in delta.history()
        )
        if vacuumed:
            # Retrying cannot help: the files those versions name are gone.
            raise StoreError(
                f"changes of {store.uri(table)} after version {since_version} are gone (vacuum deleted "
                f"files they name): read version {latest} in full, then ask for changes since it"
            ) from None
        raise StoreTransientError(f"cannot read changes of {store.uri(table)}: {bug_reason(exc)}") from None
    return Changes(rows.select(schema.names).cast(schema), since_version, latest)
