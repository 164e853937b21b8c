"""Commit protocol: crash at each step, recover, and end with exactly one clean run's rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tasks.commit import acquire_lease, commit_run, list_commits, recover_lake, release_lease
from tasks.errors import LakeBusyError
from tasks.fetch import FeedValidators
from tasks.lake_layout import ARTICLES, LEASE, commit_key, intent_key
from tasks.state import read_seen, read_validators
from tasks.storage import LocalStore
from tasks.write import plan_files
from tests.article_rows import make_rows


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

    monkeypatch.setattr("tasks.commit.apply_commit", killed)
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


def test_lease_blocks_a_live_run_and_frees_a_dead_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    acquire_lease(store, "one", 60)
    with pytest.raises(LakeBusyError, match="holds the lake"):
        acquire_lease(store, "two", 60)
    release_lease(store, "one")
    acquire_lease(store, "two", 60)
    lease = json.loads(store.get(LEASE) or b"{}")
    assert lease["run_id"] == "two"
    # A holder whose process is gone (kill -9) does not block the rerun.
    lease["pid"] = _dead_pid()
    store.put(LEASE, json.dumps(lease).encode())
    acquire_lease(store, "three", 60)
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == "three"


def test_expired_lease_is_taken_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(
        LEASE,
        json.dumps(
            {"run_id": "old", "host": "elsewhere", "expires_at": "2000-01-01T00:00:00+00:00"}
        ).encode(),
    )
    acquire_lease(store, "new", 60)
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == "new"


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
