"""Commit protocol: crash at each step, recover, and end with exactly one clean run's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from feedlake.tasks.lake.commit import commit_run, list_commits, recover_lake
from feedlake.tasks.lake.layout import ARTICLES, commit_key, intent_key
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import read_validators
from feedlake.tasks.lake.storage import LocalStore
from feedlake.tasks.lake.write import plan_files
from feedlake.tasks.values import FeedValidators
from tests.support.article_rows import make_rows


def planned(rows: pa.Table) -> list:
    return [(ARTICLES, f) for f in plan_files(rows, ARTICLES, 1024)]


def lake_rows(root: Path) -> int:
    return (
        ds.dataset(root / ARTICLES, format="parquet", partitioning="hive").count_rows()
        if (root / ARTICLES).exists()
        else 0
    )


def keys_of(rows: pa.Table) -> pa.Table:
    return rows.select(["source_id", "article_id", "content_hash"])


def test_clean_commit_writes_files_record_and_state(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 10)
    record = commit_run(store, "run1", planned(rows), keys_of(rows), {"src": FeedValidators('"e1"', None)})
    assert lake_rows(tmp_path) == 10
    assert len(record.files) == 2  # two published dates
    assert [r.run_id for r in list_commits(store)] == ["run1"]
    assert len(read_seen(store, "src")) == 10
    assert read_validators(store, ["src"])["src"].etag == '"e1"'
    assert store.list("_txn/") == []


def test_crash_before_commit_is_rolled_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 6)
    files = planned(rows)
    # Simulate a kill after the intent and the data files, before the commit record.
    store.put(
        intent_key("dead"), json.dumps({"run_id": "dead", "objects": [f.key for _, f in files]}).encode()
    )
    for _, f in files:
        store.put_if_absent(f.key, f.data)
    assert lake_rows(tmp_path) == 6
    actions = recover_lake(store)
    assert actions == ["rolled back run dead (2 objects)"]
    assert lake_rows(tmp_path) == 0
    assert len(read_seen(store, "src")) == 0
    # The rerun then commits exactly once.
    commit_run(store, "rerun", planned(rows), keys_of(rows), {})
    assert lake_rows(tmp_path) == 6


def test_crash_after_commit_before_state_is_rolled_forward(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 4)

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt("killed after the commit point")

    monkeypatch.setattr("feedlake.tasks.lake.commit.apply_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        commit_run(store, "run1", planned(rows), keys_of(rows), {"src": FeedValidators(None, "yesterday")})
    monkeypatch.undo()
    assert store.get(commit_key("run1")) is not None
    assert len(read_seen(store, "src")) == 0, "state not yet applied"
    assert recover_lake(store) == ["rolled forward committed run run1"]
    assert len(read_seen(store, "src")) == 4
    assert read_validators(store, ["src"])["src"].last_modified == "yesterday"
    assert lake_rows(tmp_path) == 4


def test_retry_after_commit_point_keeps_one_record(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 3)
    commit_run(store, "run1", planned(rows), keys_of(rows), {})
    commit_run(store, "run1", planned(rows), keys_of(rows), {})
    assert len(list_commits(store)) == 1
    assert lake_rows(tmp_path) == 3


def test_nothing_to_commit_writes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    commit_run(store, "idle", [], keys_of(make_rows("src", 0)), {})
    assert store.list("") == []
