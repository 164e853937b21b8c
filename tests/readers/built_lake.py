"""A lake built through the real write path, for the reader tests (they only read it).

Four polls (a real captured feed over eight months, then three of built rows, one of them with
edited versions of earlier articles and one in a month of its own), then a compaction: the
2024-12 partition's files are replaced by one, and the replaced files stay on disk until vacuum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.lake.compact import compact_lake
from feedlake.tasks.lake.delta_table import open_table, read_rows
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import ObjectStore, open_store
from tests.support.article_rows import corpus_rows, make_rows, replace_column
from tests.support.lake_ops import poll_once

CORPUS_FEED = "corpus/miniflux-v2/large_rss.xml"
RUNS = (
    "20261123T000000Z-r1",
    "20261123T010000Z-r2",
    "20261123T020000Z-r3",
    "20261123T030000Z-r4",
)
COMPACTION = "20261123T040000Z-compact"


@dataclass(frozen=True)
class BuiltLake:
    """A lake and what was done to it: the table version each run made, and the one compaction made."""

    store: ObjectStore
    run_versions: tuple[int, ...]
    compaction_version: int

    @property
    def uri(self) -> str:
        """The articles table's URI."""
        return self.store.uri(ARTICLES)

    def live_rows(self) -> pa.Table:
        """The reference: the rows feedlake itself reads from the table's latest version."""
        return read_rows(self.store, ARTICLES, ARTICLE_SCHEMA)


def edited(rows: pa.Table, run_id: str) -> pa.Table:
    """New versions of ``rows``: same article ids, new titles and content hashes."""
    rows = replace_column(rows, "title", [f"{t} (edited)" for t in rows.column("title").to_pylist()])
    rows = replace_column(rows, "content_hash", [f"{h}-v2" for h in rows.column("content_hash").to_pylist()])
    return replace_column(rows, "run_id", [run_id] * rows.num_rows)


def in_january(rows: pa.Table) -> pa.Table:
    """``rows`` published in January 2025 (another month partition)."""
    days = [datetime(2025, 1, 3, 9, tzinfo=UTC) + timedelta(hours=i) for i in range(rows.num_rows)]
    rows = replace_column(rows, "published_at", days)
    return replace_column(rows, "published_date", [d.date() for d in days])


def run_batches() -> list[pa.Table]:
    """The rows each of the four polls brings."""
    first, second, third, fourth = RUNS
    return [
        corpus_rows(CORPUS_FEED, "dustri", first),
        make_rows("a", 30, second),
        pa.concat_tables([make_rows("b", 30, third), edited(make_rows("a", 5, third), third)]),
        in_january(make_rows("c", 12, fourth)),
    ]


def build_lake(root: Path, url: str | None = None) -> BuiltLake:
    """Poll the four batches into a lake (at ``url``, else under ``root``) and compact it."""
    store = open_store(url or str(root / "lake"))
    versions = []
    for run_id, rows in zip(RUNS, run_batches(), strict=True):
        poll_once(store, rows, run_id)
        versions.append(table_version(store))
    done = compact_lake(store, COMPACTION, target_bytes=64 * 1024 * 1024, row_group_rows=1024)
    assert done, "the lake has a partition of several files to compact"
    return BuiltLake(store, tuple(versions), table_version(store))


def table_version(store: ObjectStore) -> int:
    """The latest version of the articles table."""
    table = open_table(store, ARTICLES)
    assert table is not None
    return table.version()
