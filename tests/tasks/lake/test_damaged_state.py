"""Damaged lake objects: every read names the object, and the run sets it aside and rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.health.records import HEALTH_KEY, SourceHealth, read_health, write_health
from feedlake.tasks.lake.commit import CommitRecord, apply_commit, live_files, recover_lake
from feedlake.tasks.lake.layout import commit_key, feed_state_key, intent_key, keys_key, seen_key
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import DAMAGED, read_source_validators
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.pipeline.stages import read_seen_repairing, read_stored_validators
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport
from tests.support.article_rows import make_rows
from tests.support.lake_ops import poll_once

GARBAGE = b"\xff\xfe\x00 not what anyone wrote \x80"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    url = str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")
    return open_store(url)


def set_aside_copies(store: ObjectStore, key: str) -> list[bytes]:
    return [store.get(k) or b"" for k in store.list(f"{DAMAGED}/{key}.")]


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
    assert sum(f.rows for f in live_files(store)) == 5


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


def test_a_damaged_commit_record_is_named_by_readers_and_the_files_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from feedlake.flows.cli import main

    store = open_store(str(tmp_path / "lake"))
    poll_once(store, make_rows("a", 3), "run-1")
    store.put(commit_key("run-2"), b'{"run_id": "run-2", "files": 7}')
    with pytest.raises(DamagedObjectError, match=f"damaged object {commit_key('run-2')}: not a commit"):
        live_files(store)
    assert main(["files", "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert commit_key("run-2") in err and "Traceback" not in err


def test_recovery_sets_aside_an_undecodable_intent_and_leaves_a_damaged_commit_alone(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    store.put(intent_key("run-x"), GARBAGE)
    store.put(intent_key("run-y"), json.dumps({"run_id": "run-y", "objects": []}).encode())
    store.put(commit_key("run-y"), GARBAGE)
    actions = recover_lake(store)
    assert any(intent_key("run-x") in a and "moved to" in a for a in actions), actions
    assert any(a.startswith("left run run-y as it is: damaged object") for a in actions), actions
    assert store.get(intent_key("run-x")) is None
    assert set_aside_copies(store, intent_key("run-x")) == [GARBAGE]
    assert store.get(intent_key("run-y")) is not None, "kept for a person: its files may be live"


def test_a_damaged_keys_object_is_rebuilt_from_the_committed_files(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    poll_once(store, make_rows("a", 4), "run-1")
    record = next(
        r for r in [CommitRecord.from_json(store.get(k) or b"", k) for k in store.list("_commits/")]
    )
    store.delete(seen_key("a"))
    store.put(keys_key(record.run_id), GARBAGE)
    apply_commit(store, CommitRecord(**{**record.__dict__, "keys_object": keys_key(record.run_id)}))
    assert len(read_seen(store, "a")) == 4
    assert pa.types.is_string(read_seen(store, "a").type)
