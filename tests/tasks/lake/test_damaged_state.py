"""Damaged lake objects: every read names the object, and the run sets it aside and rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.health.records import HEALTH_KEY, SourceHealth, read_health, write_health
from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.compact import vacuum_lake
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES, feed_state_key, intent_key, keys_key, seen_key
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import DAMAGED, read_source_validators
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.pipeline.stages import read_seen_repairing, read_stored_validators
from feedlake.tasks.quarantine import QUARANTINE_SCHEMA
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import poll_once

GARBAGE = b"\xff\xfe\x00 not what anyone wrote \x80"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    url = str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")
    return open_store(url)


def set_aside_copies(store: ObjectStore, key: str) -> list[bytes]:
    return [store.get(k) or b"" for k in store.list(f"{DAMAGED}/{key}.")]


def table_keys(store: ObjectStore, table: str = ARTICLES) -> list[str]:
    """``article_id:content_hash`` of every row of a table's latest version, as any Delta reader sees it."""
    rows = DeltaTable(store.uri(table), storage_options=store.delta_options()).to_pyarrow_table()
    return sorted(
        f"{a}:{h}"
        for a, h in zip(rows["article_id"].to_pylist(), rows["content_hash"].to_pylist(), strict=True)
    )


def is_held(rows: pa.Table) -> pa.ChunkedArray:
    """Every third article (by its number) is held."""
    numbers = [int(article_id.rsplit("-", 1)[1]) for article_id in rows.column("article_id").to_pylist()]
    return pa.chunked_array([pa.array([n % 3 == 0 for n in numbers])])


def held(rows: pa.Table) -> pa.Table:
    failed = pa.array([["expect_something"]] * rows.num_rows, pa.list_(pa.string()))
    rows = rows.append_column("failed_expectations", failed)
    return rows.append_column("stage", pa.array(["validate"] * rows.num_rows)).cast(QUARANTINE_SCHEMA)


def commit(store: ObjectStore, run_id: str, accepted: pa.Table, quarantined: pa.Table) -> None:
    commit_run(
        store, run_id, plan_run_files(accepted, quarantined, 1024), run_keys(accepted, quarantined), {}
    )


def test_a_damaged_seen_index_is_set_aside_and_rebuilt_from_the_table(store: ObjectStore) -> None:
    rows = make_rows("a", 5)
    poll_once(store, rows, "run-1")
    store.put(seen_key("a"), GARBAGE)
    with pytest.raises(DamagedObjectError, match=f"damaged object {seen_key('a')}"):
        read_seen(store, "a")
    report = SourceReport("a")
    seen = read_seen_repairing(store, report, rows.column("article_id").combine_chunks())
    assert len(seen) == 5, "every committed key is back: nothing is ingested twice"
    assert set_aside_copies(store, seen_key("a")) == [GARBAGE]
    assert len(read_seen(store, "a")) == 5, "replaced in place by its rebuild, never removed first"
    assert seen_key("a") in report.warnings[0] and "rebuilt from 5 committed row keys" in report.warnings[0]
    # Polling the same rows again adds nothing.
    poll_once(store, rows, "run-2")
    assert sum(f.rows for f in live_files(store, ARTICLES)) == 5
    assert table_keys(store) == sorted(f"a-{i}:h{i}" for i in range(5))


def test_the_rebuild_counts_the_quarantined_rows_too(store: ObjectStore) -> None:
    # A held row is committed (to quarantine): a rebuilt index that forgot it would take it in again.
    rows = pa.concat_tables([make_rows("a", 6), make_rows("b", 2)])
    commit(store, "run-1", rows.filter(pc.invert(is_held(rows))), held(rows.filter(is_held(rows))))
    store.put(seen_key("a"), GARBAGE)
    report = SourceReport("a")
    seen = read_seen_repairing(store, report, rows.column("article_id").combine_chunks())
    assert sorted(seen.to_pylist()) == sorted(f"a-{i}:h{i}" for i in range(6))
    assert "rebuilt from 6 committed row keys" in report.warnings[0]
    assert set_aside_copies(store, seen_key("a")) == [GARBAGE]


def test_a_damaged_feed_state_is_set_aside_and_the_feed_fetched_in_full(store: ObjectStore) -> None:
    store.put(feed_state_key("a"), GARBAGE)
    store.put(feed_state_key("b"), json.dumps({"etag": '"x"', "last_modified": None}).encode())
    with pytest.raises(DamagedObjectError, match=f"damaged object {feed_state_key('a')}: not JSON"):
        read_source_validators(store, "a")
    sources = [Source(s, f"https://{s}.example/feed", s, "p", "news") for s in ("a", "b")]
    reports = {s.id: SourceReport(s.id) for s in sources}
    found = read_stored_validators(store, sources, reports)
    assert list(found) == ["b"] and found["b"].etag == '"x"'
    assert reports["a"].status == "pending" and "fetching the feed in full" in reports["a"].warnings[0]
    assert store.get(feed_state_key("a")) is None
    assert set_aside_copies(store, feed_state_key("a")) == [GARBAGE]


@pytest.mark.parametrize(
    "body",
    [
        GARBAGE,
        b"[1, 2]",
        b'{"a": {"source_id": "a", "url": "u", "consecutive_failures": "many"}}',
        b'{"a": {"source_id": "a", "url": "u", "next_due_at": "soon"}}',
        b'{"a": {"nope": 1}}',
    ],
)
def test_damaged_health_is_named(tmp_path: Path, body: bytes) -> None:
    store = open_store(str(tmp_path / "lake"))
    store.put(HEALTH_KEY, body)
    with pytest.raises(DamagedObjectError, match=f"damaged object {HEALTH_KEY}: not the health records"):
        read_health(store)


def test_health_written_over_a_damaged_object_keeps_its_bytes(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    store.put(HEALTH_KEY, GARBAGE)
    write_health(store, {"a": SourceHealth("a", "https://a.example/feed", consecutive_failures=2)})
    assert read_health(store)["a"].consecutive_failures == 2
    assert set_aside_copies(store, HEALTH_KEY) == [GARBAGE]


def test_a_damaged_table_log_is_named_by_the_files_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The table's log replaced the commit records: a damaged log entry fails the command cleanly,
    # naming the table.
    from feedlake.flows.cli import main

    store = open_store(str(tmp_path / "lake"))
    poll_once(store, make_rows("a", 3), "run-1")
    poll_once(store, make_rows("a", 6), "run-2")
    last = sorted(k for k in store.list(f"{ARTICLES}/_delta_log/") if k.endswith(".json"))[-1]
    store.put(last, GARBAGE)
    assert main(["files", "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert store.uri(ARTICLES) in err and "Traceback" not in err
    # The entry is named, and the error is not one to retry.
    assert f"damaged object {last}" in err and "try again" not in err and "<unknown>" not in err


@pytest.mark.parametrize(
    "body",
    [
        GARBAGE,
        json.dumps(
            {"run_id": "run-x", "objects": ["{orphan}"], "record": {"run_id": "run-x", "files": 7}}
        ).encode(),
        json.dumps({"run_id": "run-x", "objects": "{orphan}", "record": None}).encode(),
    ],
    ids=["garbage", "damaged-plan", "damaged-objects"],
)
def test_recovery_sets_aside_a_damaged_intent_and_recovers_the_others(tmp_path: Path, body: bytes) -> None:
    store = open_store(str(tmp_path / "lake"))
    poll_once(store, make_rows("a", 3), "run-1")
    # A file a crashed writer left: only the damaged intent names it.
    orphan = f"{ARTICLES}/published_month=2024-12/part-orphan.parquet"
    store.put(orphan, b"PAR1 whatever a writer left PAR1")
    damaged = body.replace(b"{orphan}", orphan.encode())
    store.put(intent_key("run-x"), damaged)
    store.put(keys_key("run-x"), b"keys")
    # And a sound intent of a run killed after its data files, before its commit.
    crashing = CrashingStore(store, crash_at=2)
    rows = make_rows("a", 6)
    with pytest.raises(Killed):
        commit(store=crashing, run_id="run-z", accepted=rows.slice(3), quarantined=held(rows.slice(0, 0)))
    [run_z_file] = [
        k
        for k in store.list(f"{ARTICLES}/")
        if "_delta_log" not in k and k not in live_keys(store) and k != orphan
    ]

    actions = recover_lake(store)

    assert any(intent_key("run-x") in a and "moved to" in a for a in actions), actions
    assert "rolled back run run-z (2 objects)" in actions, actions
    assert store.get(intent_key("run-x")) is None
    assert set_aside_copies(store, intent_key("run-x")) == [damaged]
    assert store.list("_txn/") == []
    # The damaged intent's files stay (it cannot say whether a table names them); the sound one's go.
    assert store.get(orphan) is not None and store.get(run_z_file) is None
    assert table_keys(store) == sorted(f"a-{i}:h{i}" for i in range(3))
    # No table version names the orphan: vacuum takes it once it is old enough.
    assert orphan in vacuum_lake(store, retention_hours=0, dry_run=True)
    vacuum_lake(store, retention_hours=0)
    assert store.get(orphan) is None
    assert table_keys(store) == sorted(f"a-{i}:h{i}" for i in range(3))


def live_keys(store: ObjectStore) -> set[str]:
    return {f.key for f in live_files(store, ARTICLES)}


def test_an_intent_without_a_plan_from_before_delta_is_rolled_back(tmp_path: Path) -> None:
    # The release before Delta tables wrote intents of objects only; one whose run left no commit
    # record never committed, so its objects go.
    store = open_store(str(tmp_path / "lake"))
    poll_once(store, make_rows("a", 3), "run-1")
    orphan = f"{ARTICLES}/source_id=a/published_date=2024-12-08/part-0.parquet"
    store.put(orphan, b"PAR1 whatever a writer left PAR1")
    store.put(intent_key("run-x"), json.dumps({"run_id": "run-x", "objects": [orphan]}).encode())
    assert recover_lake(store) == ["rolled back run run-x (1 objects)"]
    assert store.get(orphan) is None and store.list("_txn/") == []
    assert set_aside_copies(store, intent_key("run-x")) == []
    assert table_keys(store) == sorted(f"a-{i}:h{i}" for i in range(3))


def test_a_damaged_keys_object_is_rebuilt_from_the_committed_files(tmp_path: Path) -> None:
    # Killed after the commit point, before the seen index took the run's keys; its keys object is
    # damaged meanwhile. Recovery rolls the run forward reading the keys from its data files, each
    # of which holds rows of both sources.
    store = open_store(str(tmp_path / "lake"))
    rows = pa.concat_tables([make_rows("a", 4), make_rows("b", 3)])
    files = plan_run_files(rows, held(rows.slice(0, 0)), 1024)
    assert len(files) == 1
    before_state = 1 + len(files) + 1  # the intent, the data files, the keys object
    crashing = CrashingStore(store, crash_at=before_state)
    with pytest.raises(Killed):
        commit_run(crashing, "run-1", files, run_keys(rows), {})
    assert len(table_keys(store)) == 7, "committed"
    store.put(keys_key("run-1"), GARBAGE)
    for source_id in ("a", "b"):
        store.delete(seen_key(source_id))
    assert recover_lake(store) == ["rolled forward committed run run-1"]
    assert sorted(read_seen(store, "a").to_pylist()) == [f"a-{i}:h{i}" for i in range(4)]
    assert sorted(read_seen(store, "b").to_pylist()) == [f"b-{i}:h{i}" for i in range(3)]
    assert pa.types.is_string(read_seen(store, "a").type)
    assert store.list("_txn/") == []
    # Polling the same rows again adds nothing.
    poll_once(store, rows, "run-2")
    assert len(table_keys(store)) == 7
