"""Incremental reads: read_changes returns exactly what the versions after a given one changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from feedlake.tasks.errors import StoreError
from feedlake.tasks.lake.changes import read_changes
from feedlake.tasks.lake.compact import compact_lake
from feedlake.tasks.lake.delta_table import open_table
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.quarantine import replay_quarantine
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from feedlake.tasks.validate.validator import ArticleValidator
from tests.support.article_rows import make_rows, replace_column
from tests.support.lake_ops import poll_once

RUNS = [f"20261123T0{i}0000Z-r{i}" for i in range(1, 5)]
OLD = datetime(1985, 6, 1, 12, tzinfo=UTC)


def keys(rows: pa.Table) -> list[tuple[str, str]]:
    return sorted(zip(rows["article_id"].to_pylist(), rows["content_hash"].to_pylist(), strict=True))


def version(store: ObjectStore, table: str = ARTICLES) -> int:
    delta = open_table(store, table)
    assert delta is not None
    return delta.version()


def batch(i: int) -> pa.Table:
    """The rows of run i: a source of its own, and from the third run on new versions of run 1's."""
    rows = make_rows(f"s{i}", 4 + i, RUNS[i - 1])
    if i >= 3:
        edits = make_rows("s1", 2, RUNS[i - 1])
        edits = replace_column(edits, "content_hash", [f"h{n}-run{i}" for n in range(2)])
        rows = pa.concat_tables([rows, edits])
    return rows


@pytest.fixture
def polled(tmp_path: Path) -> tuple[ObjectStore, list[int]]:
    """A lake after four runs, with the table version each made."""
    store = open_store(str(tmp_path / "lake"))
    versions = []
    for i, run_id in enumerate(RUNS, start=1):
        poll_once(store, batch(i), run_id)
        versions.append(version(store))
    return store, versions


def test_since_version_returns_exactly_the_rows_later_versions_inserted(polled) -> None:
    store, versions = polled
    assert versions == [1, 2, 3, 4]  # version 0 created the table, each run made one version
    for since in range(-1, versions[-1]):
        changes = read_changes(store, since)
        later = [batch(i) for i, v in enumerate(versions, start=1) if v > since]
        assert keys(changes.rows) == sorted(k for rows in later for k in keys(rows)), since
        assert set(changes.rows["_change_type"].to_pylist()) <= {"insert"}
        assert all(v > since for v in changes.rows["_commit_version"].to_pylist())
        assert (changes.since_version, changes.latest_version) == (since, versions[-1])
    # The rows come whole: every article column, then the partition and the change columns.
    rows = read_changes(store, 2).rows
    assert rows.column_names[: len(batch(1).column_names)] == batch(1).column_names
    assert {"published_month", "_change_type", "_commit_version", "_commit_timestamp"} <= set(
        rows.column_names
    )
    assert sorted(set(rows["run_id"].to_pylist())) == RUNS[2:]


def test_a_compaction_is_a_version_with_no_changed_rows(polled) -> None:
    store, versions = polled
    before = read_changes(store, -1).rows
    done = compact_lake(store, "20261123T050000Z-compact", target_bytes=1 << 26, row_group_rows=1024)
    assert done and version(store) == versions[-1] + 1
    changes = read_changes(store, versions[-1])
    assert changes.rows.num_rows == 0 and changes.latest_version == versions[-1] + 1
    # Read from the start, the compaction's rewritten rows are not counted a second time.
    assert keys(read_changes(store, -1).rows) == keys(before)
    poll_once(store, make_rows("late", 3, "20261123T060000Z-late"), "20261123T060000Z-late")
    after = read_changes(store, versions[-1])
    assert keys(after.rows) == keys(make_rows("late", 3))
    assert set(after.rows["_commit_version"].to_pylist()) == {versions[-1] + 2}


def test_since_the_latest_version_or_later_there_is_nothing(polled) -> None:
    store, versions = polled
    for since in (versions[-1], versions[-1] + 5):
        changes = read_changes(store, since)
        assert changes.rows.num_rows == 0
        assert (changes.since_version, changes.latest_version) == (since, versions[-1])


def test_changes_whose_files_vacuum_deleted_are_a_terminal_error_that_says_so(polled) -> None:
    # A consumer that last read before a compaction whose replaced files were vacuumed cannot be
    # served those versions again: retrying cannot help, it must re-read the table and go on.
    from feedlake.tasks.lake.compact import vacuum_lake

    store, versions = polled
    compact_lake(store, "20261123T050000Z-compact", target_bytes=1 << 26, row_group_rows=1024)
    assert vacuum_lake(store, retention_hours=0)
    with pytest.raises(StoreError, match="vacuum"):
        read_changes(store, versions[0])
    # Versions after the vacuum are served as ever.
    assert read_changes(store, version(store)).rows.num_rows == 0


def test_a_lake_without_the_table_is_an_error_that_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a Delta table"):
        read_changes(open_store(str(tmp_path / "empty")), -1)


def held_rows() -> pa.Table:
    """Ten rows: four published in 1985 (outside the default suite's date range), one of those with an
    ftp URL too."""
    rows = make_rows("q", 10, "20261123T000000Z-seed")
    published = rows["published_at"].to_pylist()
    published[:4] = [OLD] * 4
    rows = replace_column(rows, "published_at", published)
    rows = replace_column(
        rows, "url", [*rows["url"].to_pylist()[:3], "ftp://example.test/3", *rows["url"].to_pylist()[4:]]
    )
    return replace_column(rows, "published_date", [p.date() for p in published])


def relaxed_validator(folder: Path) -> ArticleValidator:
    """The default suite with a wider date range: what an operator's fix for 1985 archives looks like."""
    suite = json.loads(DEFAULT_SUITE.read_text())
    for item in suite["row_expectations"]:
        if item["kwargs"].get("column") == "published_at":
            item["kwargs"]["min_value"] = "1970-01-01T00:00:00+00:00"
    path = folder / "relaxed.json"
    path.write_text(json.dumps(suite))
    return ArticleValidator(path)


def test_a_quarantine_replay_shows_as_inserts_in_articles_and_deletes_in_quarantine(tmp_path: Path) -> None:
    from feedlake.tasks.lake.commit import commit_run

    store = open_store(str(tmp_path / "lake"))
    outcome = ArticleValidator().validate(held_rows())
    assert (outcome.accepted.num_rows, outcome.quarantined.num_rows) == (6, 4)
    files = plan_run_files(outcome.accepted, outcome.quarantined, 1024)
    commit_run(store, "20261123T000000Z-seed", files, run_keys(outcome.accepted, outcome.quarantined), {})
    articles_before, quarantine_before = version(store), version(store, QUARANTINE)
    result = replay_quarantine(
        store, "20261123T010000Z-replay", relaxed_validator(tmp_path), row_group_rows=1024
    )
    assert (result.moved, result.still_held, result.committed) == (3, 1, True)
    moved = [key for key in keys(outcome.quarantined) if key[0] != "q-3"]
    inserted = read_changes(store, articles_before)
    assert keys(inserted.rows) == moved
    assert set(inserted.rows["_change_type"].to_pylist()) == {"insert"}
    assert "failed_expectations" not in inserted.rows.column_names
    # The held rows' file is replaced: all its rows deleted, the one still held inserted anew.
    held = read_changes(store, quarantine_before, QUARANTINE).rows.to_pylist()
    by_kind = {
        kind: sorted((r["article_id"], r["content_hash"]) for r in held if r["_change_type"] == kind)
        for kind in ("delete", "insert")
    }
    assert by_kind == {"delete": keys(outcome.quarantined), "insert": [("q-3", "h3")]}
    assert len(held) == 5
    still = next(r for r in held if r["_change_type"] == "insert")
    assert still["failed_expectations"] == ["expect_column_values_to_match_regex(url)"]
    # Read from the start: the seed's four inserts, then the replay's four deletes and one insert.
    history = read_changes(store, -1, QUARANTINE).rows
    assert sorted(history["_change_type"].to_pylist()) == ["delete"] * 4 + ["insert"] * 5


def test_changes_have_one_schema_the_tables_own_whether_or_not_rows_changed(polled) -> None:
    # A consumer appends each read to what it has: every read must have the same columns and types,
    # those of the table (plain strings, UTC timestamps) plus the three change columns.
    from feedlake.schemas.article import ARTICLE_SCHEMA, table_schema

    store, versions = polled
    expected = table_schema(ARTICLE_SCHEMA)
    for since in (-1, versions[-1]):
        rows = read_changes(store, since).rows
        assert rows.schema.names == [*expected.names, "_change_type", "_commit_version", "_commit_timestamp"]
        for field in expected:
            assert rows.schema.field(field.name).type == field.type, (since, field.name)
        assert rows.schema.field("_change_type").type == pa.string()
        assert rows.schema.field("_commit_version").type == pa.int64()
        assert rows.schema.field("_commit_timestamp").type == pa.timestamp("us", tz="UTC")
