"""A damaged seen index is replaced by its rebuild, never removed first: a rebuild that fails or is
killed fails only its source, and the next successful poll still stores every article once.

The rebuild reads the source's committed row keys from the Delta tables. "The table cannot be read"
is made real by damaging the bytes of its live data files (delta-rs reads them itself, not through
the lake's object store), and put right by writing the saved bytes back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import feedlake.tasks.lake.seen_index
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES, seen_delta_key, seen_key
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import DAMAGED
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.pipeline.stages import NormalizedSource, drop_duplicates
from feedlake.tasks.values import FeedValidators, SourceReport
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import article_keys, physical_files

GARBAGE = b"\xff\xfe\x00 not what anyone wrote \x80"
SPLIT_AT = 64  # flagged (new keys go to a delta) at 16 keys; split into buckets past 64


@pytest.fixture(params=["local", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")


class TableOutage:
    """While on, every live data file of the articles table holds damaged bytes, so no reader can
    read the table; ``end`` writes the saved bytes back. Written to the store given (under any
    CrashingStore), so these writes are not counted as the run's."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.saved: dict[str, bytes] = {}

    def begin(self) -> None:
        for live in live_files(self.store, ARTICLES):
            if live.key not in self.saved:
                self.saved[live.key] = self.store.get(live.key) or b""
                self.store.put(live.key, GARBAGE)

    def end(self) -> None:
        for key, raw in self.saved.items():
            self.store.put(key, raw)
        self.saved = {}


def poll(
    store: ObjectStore, rows: pa.Table, run_id: str, before_commit: Callable[[], None] | None = None
) -> dict[str, SourceReport]:
    """The lake-facing half of a poll through the run's own dedup (which repairs the seen index)."""
    from feedlake.tasks.lake.commit import recover_lake
    from feedlake.tasks.lake.write import plan_files

    recover_lake(store)
    normalized = []
    for source_id in pc.unique(rows.column("source_id")).to_pylist():
        part = rows.filter(pc.equal(rows.column("source_id"), source_id)).combine_chunks()
        normalized.append(
            NormalizedSource(source_id, part.to_batches()[0], FeedValidators(f'"{run_id}"', None))
        )
    reports = {n.source_id: SourceReport(n.source_id, status="ok") for n in normalized}
    kept = drop_duplicates(store, normalized, reports)
    if before_commit is not None:
        before_commit()
    table = pa.Table.from_batches([k.rows for k in kept], schema=rows.schema)
    files = [(ARTICLES, f) for f in plan_files(table, ARTICLES, 1024)]
    validators = {k.source_id: k.validators for k in kept if k.validators is not None}
    commit_run(store, run_id, files, table.select(["source_id", "article_id", "content_hash"]), validators)
    for k in kept:
        reports[k.source_id].new = k.rows.num_rows
    return reports


def feed(run: int) -> pa.Table:
    """Source a's feed grows by 4 items a poll (from 20), b's by one (from 3)."""
    return pa.concat_tables([make_rows("a", 20 + 4 * run), make_rows("b", 3 + run)])


def expected_keys(runs: int) -> list[tuple[str, str]]:
    return sorted(
        [(f"a-{i}", f"h{i}") for i in range(20 + 4 * (runs - 1))]
        + [(f"b-{i}", f"h{i}") for i in range(3 + runs - 1)]
    )


def copies(store: ObjectStore, key: str) -> list[bytes]:
    return [store.get(k) or b"" for k in store.list(f"{DAMAGED}/{key}.")]


@pytest.fixture(autouse=True)
def small_split(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small thresholds, so a few dozen rows make a flagged root with a delta, as big feeds do.
    monkeypatch.setattr(feedlake.tasks.lake.seen_index, "SEEN_SPLIT_AT", SPLIT_AT)


def test_a_damaged_data_file_leaves_the_damaged_index_in_place_and_fails_only_its_source(
    lake_url: str,
) -> None:
    store = open_store(lake_url)
    poll(store, feed(0), "r0")
    # One file of the month holds both sources' rows.
    [data_file] = [f.key for f in live_files(store, ARTICLES)]
    kept = store.get(data_file) or b""
    store.put(seen_key("a"), GARBAGE)
    store.put(data_file, GARBAGE)
    for run_id in ("r1", "r2"):  # every poll tries again, and fails again while the file is damaged
        reports = poll(store, feed(1), run_id)
        assert reports["a"].status == "error" and reports["a"].error_kind == "damaged"
        error = reports["a"].error
        assert error is not None and f"damaged object {seen_key('a')}" in error
        # The error names the table and the file it could not read.
        assert store.uri(ARTICLES) in error and data_file.removeprefix(f"{ARTICLES}/") in error, error
        # b shares the damaged file, but its own index is sound: it polls on.
        assert reports["b"].status == "ok" and reports["b"].new == (1 if run_id == "r1" else 0)
        assert store.get(seen_key("a")) == GARBAGE, "left in place: never read as an empty index"
    store.put(data_file, kept)  # a person restores the file
    reports = poll(store, feed(1), "r3")
    assert reports["a"].status == "ok" and reports["a"].new == 4
    assert "seen index rebuilt from 20 committed row keys" in reports["a"].warnings[0]
    assert article_keys(store) == expected_keys(2)
    assert copies(store, seen_key("a")) == [GARBAGE]


def test_an_unreadable_table_during_the_rebuild_fails_the_source_and_the_next_poll_repairs(
    lake_url: str,
) -> None:
    store = open_store(lake_url)
    outage = TableOutage(store)
    poll(store, feed(0), "r0")
    poll(store, feed(1), "r1")
    assert store.get(seen_delta_key("a")) is not None
    store.put(seen_delta_key("a"), GARBAGE)
    outage.begin()
    reports = poll(store, feed(2), "r2")
    assert reports["a"].status == "error" and reports["a"].error_kind == "damaged"
    assert reports["a"].error is not None and "cannot read the Delta table" in reports["a"].error
    assert store.get(seen_delta_key("a")) == GARBAGE
    outage.end()
    reports = poll(store, feed(2), "r3")
    assert reports["a"].new == 4 and reports["b"].new == 0
    assert article_keys(store) == expected_keys(3)
    assert len(read_seen(store, "a").unique()) == 28


def test_keys_that_cannot_reach_a_damaged_index_mark_it_for_rebuild(lake_url: str) -> None:
    store = open_store(lake_url)
    outage = TableOutage(store)
    poll(store, feed(0), "r0")
    poll(store, feed(1), "r1")

    def damage() -> None:
        # Dedup read a sound index; by the commit its delta is damaged and the table unreadable.
        store.put(seen_delta_key("a"), GARBAGE)
        outage.begin()

    reports = poll(store, feed(2), "r2", before_commit=damage)
    assert reports["a"].new == 4, "committed: the rows are in the table, their keys in no index"
    assert store.list("_txn/") == []
    outage.end()
    with pytest.raises(DamagedObjectError, match="marked for rebuild"):
        read_seen(store, "a")
    outage.begin()
    reports = poll(store, feed(2), "r3")
    assert reports["a"].status == "error" and reports["b"].status == "ok"
    outage.end()
    reports = poll(store, feed(2), "r4")
    assert reports["a"].status == "ok" and reports["a"].new == 0 and reports["a"].warnings
    assert article_keys(store) == expected_keys(3)
    assert copies(store, seen_delta_key("a")) == [GARBAGE]
    assert copies(store, seen_key("a")) == [], "a mark is not damage: nothing to keep"


def test_a_split_into_damaged_buckets_with_the_table_unreadable_marks_the_index(lake_url: str) -> None:
    # A small unflagged root taking many keys at once splits: it writes a level of buckets, then
    # points the root at it. Damaged leftovers there and an unreadable table leave the keys of the
    # commit in no object that is read: only the mark keeps the next poll from taking them again.
    store = open_store(lake_url)
    outage = TableOutage(store)
    poll(store, make_rows("a", 5), "r0")
    level = 4  # 75 keys at split_at 64: buckets of 8 or fewer
    buckets = [f"_state/seen/a/k{level}/b{n:x}.parquet" for n in range(1 << level)]

    def damage() -> None:
        for key in buckets:
            store.put(key, GARBAGE)
        outage.begin()

    assert poll(store, make_rows("a", 75), "r1", before_commit=damage)["a"].new == 70
    outage.end()
    with pytest.raises(DamagedObjectError, match="marked for rebuild"):
        read_seen(store, "a", pa.array(["a-1"]))
    reports = poll(store, make_rows("a", 75), "r2")
    assert reports["a"].status == "ok" and reports["a"].new == 0
    assert article_keys(store) == sorted((f"a-{i}", f"h{i}") for i in range(75))
    assert len(read_seen(store, "a").unique()) == 75
    assert all(copies(store, key) == [GARBAGE] for key in buckets)


Scenario = Callable[[ObjectStore, TableOutage], Callable[[], None] | None]


def damage_root_before_the_poll(store: ObjectStore, outage: TableOutage) -> Callable[[], None] | None:
    store.put(seen_key("a"), GARBAGE)
    return None


def damage_delta_before_the_commit(store: ObjectStore, outage: TableOutage) -> Callable[[], None] | None:
    def damage() -> None:
        store.put(seen_delta_key("a"), GARBAGE)

    return damage


def damage_delta_and_table_before_the_commit(
    store: ObjectStore, outage: TableOutage
) -> Callable[[], None] | None:
    def damage() -> None:
        store.put(seen_delta_key("a"), GARBAGE)
        outage.begin()

    return damage


SCENARIOS: list[Scenario] = [
    damage_root_before_the_poll,
    damage_delta_before_the_commit,
    damage_delta_and_table_before_the_commit,
]


# Each case is a few polls: on S3 the hardest scenario alone (about 15 s), on a folder all three.
CRASH_CASES = [("local", s) for s in SCENARIOS] + [("s3", damage_delta_and_table_before_the_commit)]


@pytest.mark.parametrize(("where", "scenario"), CRASH_CASES, ids=lambda v: getattr(v, "__name__", v))
def test_kill_before_every_write_of_a_repair_and_commit(
    request: pytest.FixtureRequest, tmp_path: Path, where: str, scenario: Scenario
) -> None:
    lake_url = str(tmp_path / "lake") if where == "local" else request.getfixturevalue("s3_lake")
    probe_base = open_store(str(tmp_path / "probe"))
    poll(probe_base, feed(0), "r0")
    poll(probe_base, feed(1), "r1")
    probe = CrashingStore(probe_base)
    hook = scenario(probe_base, TableOutage(probe_base))
    poll(probe, feed(2), "r2", before_commit=hook)
    writes = probe.writes
    assert writes >= 8
    for crash_at in range(writes):
        base = open_store(f"{lake_url}/case-{crash_at}")
        outage = TableOutage(base)
        poll(base, feed(0), "r0")
        poll(base, feed(1), "r1")
        hook = scenario(base, outage)
        with pytest.raises(Killed):
            poll(CrashingStore(base, crash_at), feed(2), "r2", before_commit=hook)
        outage.end()
        poll(base, feed(2), "r2-rerun")  # recovers first, then repairs what is still damaged
        assert article_keys(base) == expected_keys(3), f"crash before write {crash_at}"
        # Polls only add files: every data file under the table is one its log names.
        assert physical_files(base) == sorted(f.key for f in live_files(base, ARTICLES)), f"crash {crash_at}"
        assert base.list("_txn/") == []
        reports = poll(base, feed(2), "r3")
        assert reports["a"].new == reports["b"].new == 0, f"crash {crash_at}: the index lost keys"
        assert article_keys(base) == expected_keys(3)
        assert len(read_seen(base, "a").unique()) == 28
        damaged = seen_key("a") if scenario is damage_root_before_the_poll else seen_delta_key("a")
        assert copies(base, damaged) == [GARBAGE], f"crash {crash_at}"
