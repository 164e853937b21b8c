"""The seen index: one file while small, a delta once big, buckets past the threshold; crash-safe."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from feedlake.tasks.lake.layout import seen_delta_key, seen_key
from feedlake.tasks.lake.seen_index import LEVEL_META, SEEN_SCHEMA, merge_seen, read_seen, seen_buckets
from feedlake.tasks.lake.storage import ObjectStore, open_store
from tests.support.article_rows import make_rows, replace_column
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import article_keys, poll_once

SPLIT_AT = 16  # flagged at 4 keys; delta folded and buckets grown past 4; buckets of about 2


@pytest.fixture(params=["local", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")


class CountingStore(CrashingStore):
    """Counts reads too, under a lock: buckets are read and written from a few threads (CrashingStore
    already counts its writes under its own lock)."""

    def __init__(self, inner: ObjectStore, crash_at: int | None = None) -> None:
        super().__init__(inner, crash_at)
        self.gets = 0
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self.lock:
            self.gets += 1
        return self.inner.get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        with self.lock:
            self.gets += 1
        return self.inner.get_versioned(key)


def ids(start: int, stop: int) -> list[str]:
    """Real-shaped article ids: 32 hex digits."""
    return [hashlib.blake2b(f"article {i}".encode(), digest_size=16).hexdigest() for i in range(start, stop)]


def keys(article_ids: list[str], version: str = "v1") -> pa.Array:
    return pa.array([f"{a}:{version}" for a in article_ids], pa.string())


def level(store: ObjectStore, source_id: str = "s") -> int:
    """The level the root points at (0: one unsplit file)."""
    metadata = pq.read_table(io.BytesIO(store.get(seen_key(source_id)) or b"")).schema.metadata or {}
    return int(metadata.get(LEVEL_META, b"0"))


def keys_in(store: ObjectStore, key: str) -> int:
    return pq.read_table(io.BytesIO(store.get(key) or b"")).num_rows


def found(store: ObjectStore, wanted: pa.Array, source_id: str = "s") -> list[bool]:
    """Whether each key is found by a lookup of its own article id, as dedup does it."""
    article_ids = pc.list_element(pc.split_pattern(wanted, ":"), 0)
    return pc.is_in(wanted, value_set=read_seen(store, source_id, article_ids)).to_pylist()


def test_a_small_index_stays_one_file(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    merge_seen(store, "s", keys(ids(0, 3)), split_at=SPLIT_AT)
    merge_seen(store, "s", keys(ids(0, 3)), split_at=SPLIT_AT)  # a replay adds nothing
    assert store.list("_state/seen/") == [seen_key("s")]
    assert sorted(read_seen(store, "s").to_pylist()) == sorted(keys(ids(0, 3)).to_pylist())


def test_a_big_index_takes_new_keys_in_its_delta_and_folds_it(tmp_path: Path) -> None:
    store = CountingStore(open_store(str(tmp_path)))
    merge_seen(store, "s", keys(ids(0, 8)), split_at=SPLIT_AT)  # past split_at / 4: flagged
    writes = store.writes
    merge_seen(store, "s", keys(ids(8, 11)), split_at=SPLIT_AT)
    assert store.writes - writes == 1  # the delta alone, not the root
    assert store.list("_state/seen/") == [seen_key("s"), seen_delta_key("s")]
    assert all(found(store, keys(ids(0, 11))))
    merge_seen(store, "s", keys(ids(11, 13)), split_at=SPLIT_AT)  # 5 keys in the delta: folded
    assert (keys_in(store, seen_key("s")), keys_in(store, seen_delta_key("s"))) == (13, 0)
    assert all(found(store, keys(ids(0, 13))))


def test_split_happens_past_the_threshold_and_reads_only_some_buckets(lake_url: str) -> None:
    store = CountingStore(open_store(lake_url))
    merge_seen(store, "s", keys(ids(0, SPLIT_AT)), split_at=SPLIT_AT)
    assert level(store) == 0
    merge_seen(store, "s", keys(ids(SPLIT_AT, SPLIT_AT + 5)), split_at=SPLIT_AT)  # folded: 21 keys
    assert level(store) == 4  # about 2 keys a bucket: 16 buckets
    assert len(read_seen(store, "s")) == SPLIT_AT + 5
    assert all(found(store, keys(ids(0, SPLIT_AT + 5))))
    assert not any(found(store, keys(ids(0, SPLIT_AT + 5), "v2")))
    assert not any(found(store, keys(ids(100, 120))))
    store.gets = 0
    one = read_seen(store, "s", pa.array(ids(3, 4)))
    assert store.gets == 3  # the root, the delta, then the one bucket the id falls in
    assert one.to_pylist() == keys(ids(3, 4)).to_pylist()  # only the asked-for article's keys


def test_every_key_is_found_after_a_split_and_two_grows(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    levels = []
    for start in range(0, 400, 40):
        merge_seen(store, "s", keys(ids(start, start + 40)), split_at=SPLIT_AT)
        levels.append(level(store))
        assert all(found(store, keys(ids(0, start + 40))))
        assert not any(found(store, keys(ids(start + 40, start + 80))))
    assert len(set(levels)) >= 3, levels  # split, then grown at least twice
    assert sorted(read_seen(store, "s").to_pylist()) == sorted(keys(ids(0, 400)).to_pylist())
    # Only the live level and the one before it are kept.
    live, before = sorted(set(levels))[-1], sorted(set(levels))[-2]
    kept = {key.split("/")[3] for key in store.list("_state/seen/s/k")}
    assert kept == {f"k{live}", f"k{before}"}


def test_all_versions_of_an_article_share_a_bucket() -> None:
    article_ids = pa.array(ids(0, 50) + ["not-a-hex-id", "x"])
    for k in (1, 5, 12):
        numbers = seen_buckets(article_ids, k)
        assert numbers.min() >= 0 and numbers.max() < 2**k
        assert (seen_buckets(article_ids, k) == numbers).all()
    # Hex ids are bucketed by their leading digits, so the layout is readable by eye.
    assert seen_buckets(pa.array(["f" * 32, "0" * 32, "8" + "0" * 31]), 1).tolist() == [1, 0, 1]


def test_a_duplicate_stays_a_duplicate_across_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("feedlake.tasks.lake.seen_index.SEEN_SPLIT_AT", SPLIT_AT)
    store = open_store(str(tmp_path))
    for run in range(8):  # a growing feed: each poll re-sees the earlier articles
        poll_once(store, make_rows("a", 10 * (run + 1)), f"r{run}")
    assert level(store, "a") >= 4
    expected = article_keys(store)
    assert len(expected) == 80
    poll_once(store, make_rows("a", 80), "again")
    assert article_keys(store) == expected
    edited = replace_column(make_rows("a", 80), "content_hash", [f"h{i}-edited" for i in range(80)])
    poll_once(store, edited, "edited")
    assert len(article_keys(store)) == 160  # an edit is a new version, found new in every bucket


def test_an_old_single_file_index_reads_as_before_and_splits(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    old = keys(ids(0, 12))
    buffer = io.BytesIO()
    pq.write_table(
        pa.table({"key": old}, schema=SEEN_SCHEMA), buffer, compression="zstd"
    )  # as written before
    store.put(seen_key("s"), buffer.getvalue())
    assert read_seen(store, "s").to_pylist() == old.to_pylist()
    assert all(found(store, old))
    merge_seen(store, "s", keys(ids(12, 40)), split_at=SPLIT_AT)
    assert level(store) > 0
    assert all(found(store, keys(ids(0, 40))))


def crash_every_write(lake_url: str, seed: pa.Array, more: pa.Array) -> None:
    """Kill a merge before each of its writes; the index must answer for the seed, and a rerun
    must complete it."""
    probe = CountingStore(open_store(f"{lake_url}/probe"))
    merge_seen(probe, "s", seed, split_at=SPLIT_AT)
    before, old_level = probe.writes, level(probe)
    merge_seen(probe, "s", more, split_at=SPLIT_AT)
    writes, new_level = probe.writes - before, level(probe)
    assert new_level > old_level and writes > 4
    for crash_at in range(writes):
        lake = open_store(f"{lake_url}/case-{crash_at}")
        merge_seen(lake, "s", seed, split_at=SPLIT_AT)
        with pytest.raises(Killed):
            merge_seen(CountingStore(lake, crash_at), "s", more, split_at=SPLIT_AT)
        assert all(found(lake, seed)), f"crash before write {crash_at}"
        assert not any(found(lake, keys(ids(900, 920)))), f"crash before write {crash_at}"
        merge_seen(lake, "s", more, split_at=SPLIT_AT)  # what recovery does: apply the commit again
        assert all(found(lake, pa.concat_arrays([seed, more]))), f"crash before write {crash_at}"
        assert level(lake) >= new_level  # a replayed fold may also grow a bucket the split left big


def test_a_kill_at_any_write_of_a_split_leaves_a_working_index(lake_url: str) -> None:
    crash_every_write(lake_url, keys(ids(0, 14)), keys(ids(14, 24)))


def test_a_kill_at_any_write_of_a_grow_leaves_a_working_index(tmp_path: Path) -> None:
    crash_every_write(str(tmp_path), keys(ids(0, 20)), keys(ids(20, 40)))


def test_a_killed_poll_that_splits_the_index_reruns_to_one_clean_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("feedlake.tasks.lake.seen_index.SEEN_SPLIT_AT", SPLIT_AT)
    clean = open_store(str(tmp_path / "clean"))
    poll_once(clean, make_rows("a", 12), "r0")
    poll_once(clean, make_rows("a", 30), "r1")
    expected = article_keys(clean)
    probe = CountingStore(open_store(str(tmp_path / "probe")))
    poll_once(probe, make_rows("a", 12), "r0")
    before = probe.writes
    poll_once(probe, make_rows("a", 30), "r1")
    for crash_at in range(probe.writes - before):
        lake = open_store(str(tmp_path / f"case-{crash_at}"))
        poll_once(lake, make_rows("a", 12), "r0")
        with pytest.raises(Killed):
            poll_once(CountingStore(lake, crash_at), make_rows("a", 30), "r1")
        poll_once(lake, make_rows("a", 30), "r1-rerun")
        assert article_keys(lake) == expected, f"crash before write {crash_at}"
        assert level(lake, "a") > 0
        assert len(read_seen(lake, "a")) == 30


def test_concurrent_writers_lose_no_key(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))

    def writer(offset: int) -> None:
        for start in range(offset, 300, 60):
            merge_seen(store, "s", keys(ids(start, start + 30)), split_at=SPLIT_AT)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(found(store, keys(ids(0, 300))))
