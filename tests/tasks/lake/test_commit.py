"""Commit protocol: crash at each step, recover, and end with exactly one clean run's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.delta_table import APP_ID, RUN_ID_KEY, commit_history
from feedlake.tasks.lake.layout import ARTICLES, intent_key
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import read_validators
from feedlake.tasks.lake.storage import LocalStore
from feedlake.tasks.lake.write import plan_files
from feedlake.tasks.values import FeedValidators
from tests.support.article_rows import make_rows


def planned(rows: pa.Table) -> list:
    return [(ARTICLES, f) for f in plan_files(rows, ARTICLES, 1024)]


def lake_rows(root: Path) -> int:
    """Rows of the articles table's latest version, as any Delta reader sees them."""
    if not DeltaTable.is_deltatable(str(root / ARTICLES)):
        return 0
    return DeltaTable(str(root / ARTICLES)).to_pyarrow_table().num_rows


def data_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in (root / ARTICLES).rglob("*.parquet") if "_delta_log" not in p.parts
    )


def keys_of(rows: pa.Table) -> pa.Table:
    return rows.select(["source_id", "article_id", "content_hash"])


def run_commits(store: LocalStore) -> list[str]:
    return [str(c[RUN_ID_KEY]) for c in reversed(commit_history(store, ARTICLES)) if RUN_ID_KEY in c]


def test_clean_commit_writes_files_version_and_state(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 10)
    record = commit_run(store, "run1", planned(rows), keys_of(rows), {"src": FeedValidators('"e1"', None)})
    assert lake_rows(tmp_path) == 10
    assert len(record.files) == len({f.partition["published_month"] for f in record.files})
    assert run_commits(store) == ["run1"]
    assert DeltaTable(str(tmp_path / ARTICLES)).transaction_version(APP_ID) == 1
    assert record.table_versions[ARTICLES] == 1  # version 0 created the table
    assert len(read_seen(store, "src")) == 10
    assert read_validators(store, ["src"])["src"].etag == '"e1"'
    assert store.list("_txn/") == []


def test_crash_before_commit_is_rolled_back(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 6)

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt("killed after the data files, before the table commit")

    monkeypatch.setattr("feedlake.tasks.lake.commit._publish", killed)
    with pytest.raises(KeyboardInterrupt):
        commit_run(store, "dead", planned(rows), keys_of(rows), {})
    monkeypatch.undo()
    assert data_files(tmp_path), "the data files were written"
    assert lake_rows(tmp_path) == 0, "no table version names them"
    actions = recover_lake(store)
    assert actions == [f"rolled back run dead ({len(planned(rows)) + 1} objects)"]
    assert data_files(tmp_path) == []
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
    assert lake_rows(tmp_path) == 4
    assert len(read_seen(store, "src")) == 0, "state not yet applied"
    assert recover_lake(store) == ["rolled forward committed run run1"]
    assert len(read_seen(store, "src")) == 4
    assert read_validators(store, ["src"])["src"].last_modified == "yesterday"
    assert lake_rows(tmp_path) == 4
    assert run_commits(store) == ["run1"]


def test_retry_after_commit_point_makes_no_second_version(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    rows = make_rows("src", 3)

    def failed(*_args: object) -> None:
        raise OSError("the state update failed after the commit point")

    monkeypatch.setattr("feedlake.tasks.lake.commit.apply_commit", failed)
    with pytest.raises(OSError):
        commit_run(store, "run1", planned(rows), keys_of(rows), {})
    monkeypatch.undo()
    commit_run(store, "run1", planned(rows), keys_of(rows), {})
    assert run_commits(store) == ["run1"]
    assert lake_rows(tmp_path) == 3
    assert store.list("_txn/") == []


def test_crash_between_the_two_tables_is_finished_by_recovery(tmp_path: Path, monkeypatch) -> None:
    """Quarantine committed, articles not: recovery makes the articles commit from the plan."""
    from feedlake.tasks.lake import delta_table

    store = LocalStore(tmp_path)
    rows = make_rows("src", 5)
    accepted, held = rows.slice(0, 3), rows.slice(3)
    from feedlake.tasks.quarantine import QUARANTINE_SCHEMA

    held = held.append_column("failed_expectations", pa.array([["x"]] * 2, pa.list_(pa.string())))
    held = held.append_column("stage", pa.array(["validate"] * 2)).cast(QUARANTINE_SCHEMA)
    from feedlake.tasks.lake.write import plan_run_files

    files = plan_run_files(accepted, held, 1024)
    real = delta_table.commit_files

    def commit_quarantine_only(store_, table, *args, **kwargs):  # noqa: ANN001, ANN202
        if table == ARTICLES:
            raise KeyboardInterrupt("killed between the quarantine and the articles commits")
        return real(store_, table, *args, **kwargs)

    monkeypatch.setattr("feedlake.tasks.lake.commit.commit_files", commit_quarantine_only)
    with pytest.raises(KeyboardInterrupt):
        commit_run(store, "split", files, keys_of(rows), {})
    monkeypatch.undo()
    assert DeltaTable(str(tmp_path / "_quarantine")).to_pyarrow_table().num_rows == 2
    assert lake_rows(tmp_path) == 0
    assert recover_lake(store) == ["rolled forward committed run split"]
    assert lake_rows(tmp_path) == 3
    assert DeltaTable(str(tmp_path / "_quarantine")).to_pyarrow_table().num_rows == 2
    assert len(read_seen(store, "src")) == 5


def test_damaged_intent_is_set_aside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(intent_key("bad"), json.dumps({"run_id": "bad"}).encode())
    [action] = recover_lake(store)
    assert action.startswith("rolled back run bad: damaged object _txn/bad/intent.json")
    assert store.list("_txn/") == []


def test_nothing_to_commit_writes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    commit_run(store, "idle", [], keys_of(make_rows("src", 0)), {})
    assert store.list("") == []


def validation_of(run_id: str, sources: list[str]) -> pa.Table:
    from feedlake.tasks.quality.results_table import validation_rows

    return validation_rows(
        {
            "run_id": run_id,
            "kind": "poll",
            "suite": "articles",
            "validated_at": "2026-11-28T12:00:00+00:00",
            "sources": [
                {
                    "source_id": s,
                    "checked": 1,
                    "passed": 1,
                    "warned": 0,
                    "rejected": 0,
                    "failed": [],
                    "flags": [],
                }
                for s in sources
            ],
        }
    )


def validation_table(root: Path) -> list[tuple[str, str]]:
    rows = DeltaTable(str(root / "_validation_results")).to_pyarrow_table().to_pylist()
    return sorted((r["run_id"], r["source_id"]) for r in rows)


def test_validation_results_commit_with_the_run_and_survive_a_crash_before_articles(
    tmp_path: Path, monkeypatch
) -> None:
    from feedlake.tasks.lake import delta_table

    store = LocalStore(tmp_path)
    rows = make_rows("src", 4)
    real = delta_table.commit_files

    def killed_at_articles(store_, table, *args, **kwargs):  # noqa: ANN001, ANN202
        if table == ARTICLES:
            raise KeyboardInterrupt("killed after the validation results' commit, before the articles'")
        return real(store_, table, *args, **kwargs)

    monkeypatch.setattr("feedlake.tasks.lake.commit.commit_files", killed_at_articles)
    with pytest.raises(KeyboardInterrupt):
        commit_run(store, "v1", planned(rows), keys_of(rows), {}, validation=validation_of("v1", ["src"]))
    monkeypatch.undo()
    assert validation_table(tmp_path) == [("v1", "src")] and lake_rows(tmp_path) == 0
    assert recover_lake(store) == ["rolled forward committed run v1"]
    assert validation_table(tmp_path) == [("v1", "src")] and lake_rows(tmp_path) == 4
    # The next run's results join them; a run that validated nothing adds no row.
    more = make_rows("other", 2)
    commit_run(store, "v2", planned(more), keys_of(more), {}, validation=validation_of("v2", ["other"]))
    commit_run(store, "v3", [], keys_of(make_rows("src", 0)), {}, validation=validation_of("v3", []))
    assert validation_table(tmp_path) == [("v1", "src"), ("v2", "other")]
