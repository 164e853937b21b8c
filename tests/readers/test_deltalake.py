"""deltalake + pyarrow read exactly the live rows: whole table, filtered dataset, older versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow.compute as pc
from deltalake import DeltaTable

from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES
from tests.readers.built_lake import BuiltLake
from tests.readers.engines import arrow_keys
from tests.support.lake_ops import physical_files


def test_the_whole_table_is_exactly_the_live_rows(lake: BuiltLake) -> None:
    expected = lake.live_rows()
    table = DeltaTable(lake.uri).to_pyarrow_table()
    assert table.num_rows == expected.num_rows == 25 + 30 + 35 + 12
    assert arrow_keys(table) == arrow_keys(expected)
    # The compaction's replaced files are still on disk: a reader of the folder would count them.
    assert len(physical_files(lake.store)) > len(live_files(lake.store, ARTICLES))
    # Every article column, in order, then the partition column.
    assert table.column_names == [*expected.column_names, "published_month"]


def test_a_filtered_dataset_reads_only_the_partition_and_files_it_needs(lake: BuiltLake) -> None:
    dataset = DeltaTable(lake.uri).to_pyarrow_dataset()
    everything = dataset.to_table()
    month = pc.field("published_month") == "2024-12"
    source = pc.field("source_id") == "a"
    rows = dataset.to_table(filter=month & source)
    wanted = everything.filter(
        pc.and_(pc.equal(everything["published_month"], "2024-12"), pc.equal(everything["source_id"], "a"))
    )
    assert rows.num_rows == 35  # a-0..a-29 and the five edited versions
    assert arrow_keys(rows) == arrow_keys(wanted)
    # A month prunes partitions; a source prunes files by their statistics (dustri has a file in
    # each of eight months, and no other source is in those files).
    fragments = list(dataset.get_fragments())
    assert len(list(dataset.get_fragments(filter=month))) == 1 < len(fragments)
    dustri = list(dataset.get_fragments(filter=pc.field("source_id") == "dustri"))
    assert len(dustri) == 8 < len(fragments)
    january = dataset.to_table(filter=pc.field("published_at") >= datetime(2025, 1, 1, tzinfo=UTC))
    assert set(january["source_id"].to_pylist()) == {"c"} and january.num_rows == 12


def test_a_filter_on_a_column_without_statistics_keeps_every_matching_row(lake: BuiltLake) -> None:
    # Files carry statistics for a few columns only: a filter on any other must not prune files.
    dataset = DeltaTable(lake.uri).to_pyarrow_dataset()
    everything = dataset.to_table()
    for column, value in [("title", "t1"), ("feed_url", "http://example.test/feed")]:
        rows = dataset.to_table(filter=pc.field(column) == value)
        assert rows.num_rows > 0
        assert arrow_keys(rows) == arrow_keys(everything.filter(pc.equal(everything[column], value))), column
    no_guid = dataset.to_table(filter=pc.field("guid").is_null())
    assert arrow_keys(no_guid) == arrow_keys(everything.filter(pc.is_null(everything["guid"])))


def test_time_travel_reads_each_version_as_it_was(lake: BuiltLake) -> None:
    latest = DeltaTable(lake.uri)
    before = DeltaTable(lake.uri, version=lake.compaction_version - 1)
    assert lake.compaction_version == lake.run_versions[-1] + 1
    # Compaction rewrote files, not rows: the version before it reads the same rows, from the
    # files it replaced.
    assert arrow_keys(before.to_pyarrow_table()) == arrow_keys(latest.to_pyarrow_table())
    replaced = set(before.file_uris()) - set(latest.file_uris())
    assert len(replaced) == 2 and all("published_month=2024-12" in uri for uri in replaced)
    # Each run's version holds the rows of the runs up to it.
    counts = [DeltaTable(lake.uri, version=v).to_pyarrow_table().num_rows for v in lake.run_versions]
    assert counts == [25, 55, 90, 102]
    older = DeltaTable(lake.uri)
    older.load_as_version(lake.run_versions[1])
    assert set(older.to_pyarrow_table()["source_id"].to_pylist()) == {"dustri", "a"}
