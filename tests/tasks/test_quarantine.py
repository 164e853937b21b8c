"""Quarantine: held rows are listed with reasons, and replay moves those that now pass exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from feedlake.tasks.lake.changes import read_changes
from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.compact import vacuum_lake
from feedlake.tasks.lake.delta_table import KIND_KEY, RUN_ID_KEY, commit_history, live_files, reports_of
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE, VALIDATION
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.write import plan_files
from feedlake.tasks.quarantine import read_quarantine, replay_quarantine
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from feedlake.tasks.validate.validator import ArticleValidator
from tests.support.article_rows import make_rows, replace_column
from tests.support.crash_store import CrashingStore, Killed

OLD = datetime(1985, 6, 1, 12, tzinfo=UTC)
DATE_CHECK = "expect_column_values_to_be_between(published_at)"
URL_CHECK = "expect_column_values_to_match_regex(url)"
TABLES = (ARTICLES, QUARANTINE)
REPLAY = "20261123T010000Z-replay"
# What the seed holds: a-0..a-2 and b-0 fail only the date range (which the relaxed suite widens),
# a-3 fails both checks, a-4 and a-5 only the URL one. a-0..a-3 and b-0 share the 1985-06 file.
HELD = ["a-0", "a-1", "a-2", "a-3", "a-4", "a-5", "b-0"]
ACCEPTED = [f"a-{i}" for i in range(6, 12)] + [f"b-{i}" for i in range(1, 5)]
REASONS = {
    "a-0": [DATE_CHECK],
    "a-1": [DATE_CHECK],
    "a-2": [DATE_CHECK],
    "a-3": [URL_CHECK, DATE_CHECK],
    "a-4": [URL_CHECK],
    "a-5": [URL_CHECK],
    "b-0": [DATE_CHECK],
}


@pytest.fixture(scope="module")
def strict() -> ArticleValidator:
    return ArticleValidator()


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory: pytest.TempPathFactory) -> ArticleValidator:
    """The fix an operator makes for an archive that really goes back to 1985: a wider date range."""
    suite = json.loads(DEFAULT_SUITE.read_text())
    for item in suite["row_expectations"]:
        if item["kwargs"].get("column") == "published_at":
            item["kwargs"]["min_value"] = "1970-01-01T00:00:00+00:00"
    path = tmp_path_factory.mktemp("suite") / "relaxed.json"
    path.write_text(json.dumps(suite))
    return ArticleValidator(path)


def incoming() -> pa.Table:
    a = make_rows("a", 12, run_id="r1")
    published = a.column("published_at").to_pylist()
    published[:4] = [OLD] * 4
    urls = a.column("url").to_pylist()
    urls[3:6] = ["ftp://example.test/3", "ftp://example.test/4", "ftp://example.test/5"]
    a = replace_column(replace_column(a, "published_at", published), "url", urls)
    a = replace_column(a, "published_date", [p.date() for p in published])
    b = make_rows("b", 5, run_id="r1")
    b = replace_column(b, "published_at", [OLD, *b.column("published_at").to_pylist()[1:]])
    b = replace_column(b, "published_date", [OLD.date(), *b.column("published_date").to_pylist()[1:]])
    return pa.concat_tables([a, b])


def seed(store: ObjectStore, validator: ArticleValidator) -> None:
    """A poll's commit of validated rows: accepted to articles, rejected to quarantine."""
    outcome = validator.validate(incoming())
    files = [(ARTICLES, f) for f in plan_files(outcome.accepted, ARTICLES, 1024)]
    files += [(QUARANTINE, f) for f in plan_files(outcome.quarantined, QUARANTINE, 1024)]
    names = ["source_id", "article_id", "content_hash"]
    keys = pa.concat_tables([outcome.accepted.select(names), outcome.quarantined.select(names)])
    commit_run(store, "20261123T000000Z-seed", files, keys, {})


def delta(store: ObjectStore, table: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(store.uri(table), version=version, storage_options=store.delta_options())


def rows_of(store: ObjectStore, table: str, version: int | None = None) -> pa.Table:
    """A table version's rows as any Delta reader sees them, by article id."""
    return delta(store, table, version).to_pyarrow_table().sort_by("article_id")


def ids(store: ObjectStore, table: str, version: int | None = None) -> list[str]:
    """The article id of every row of a table version (a row twice is listed twice)."""
    return rows_of(store, table, version).column("article_id").to_pylist()


def reasons(store: ObjectStore) -> dict[str, list[str]]:
    held = rows_of(store, QUARANTINE)
    return dict(
        zip(
            held.column("article_id").to_pylist(), held.column("failed_expectations").to_pylist(), strict=True
        )
    )


def data_files(store: ObjectStore, table: str) -> set[str]:
    """Every data file under a table's folder, named by its log or not."""
    return {key for key in store.list(f"{table}/") if "/_delta_log/" not in key}


def live_keys(store: ObjectStore, table: str) -> set[str]:
    return {f.key for f in live_files(store, table)}


def versions(store: ObjectStore) -> dict[str, int]:
    return {table: delta(store, table).version() for table in TABLES}


def test_held_rows_are_read_back_with_reasons_and_partitions(tmp_path: Path, strict) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    held = read_quarantine(store)
    found = dict(
        zip(
            held.column("article_id").to_pylist(), held.column("failed_expectations").to_pylist(), strict=True
        )
    )
    assert found == REASONS
    assert set(held.column("published_date").to_pylist()) >= {OLD.date()}
    assert set(held.column("stage").to_pylist()) == {"validate"}
    assert set(held.column("file").to_pylist()) == live_keys(store, QUARANTINE)
    assert read_quarantine(store, "b").column("article_id").to_pylist() == ["b-0"]
    assert ids(store, ARTICLES) == sorted(ACCEPTED)
    # What any Delta reader sees of the quarantine table is what read_quarantine lists.
    assert reasons(store) == REASONS
    months = {f.partition["published_month"] for f in live_files(store, QUARANTINE)}
    assert months == {"1985-06", "2024-12"}


def test_replay_without_a_fix_moves_nothing_and_writes_nothing(tmp_path: Path, strict) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    before = store.list("")
    result = replay_quarantine(store, REPLAY, strict, row_group_rows=1024)
    assert (result.checked, result.moved, result.still_held, result.committed) == (7, 0, 7, False)
    assert store.list("") == before


def test_replay_after_a_fix_moves_exactly_the_rows_that_now_pass(tmp_path: Path, strict, relaxed) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    seeded = versions(store)
    replaced = live_keys(store, QUARANTINE)
    dry = replay_quarantine(store, "20261123T005900Z-dry", relaxed, row_group_rows=1024, dry_run=True)
    assert (dry.moved, dry.committed) == (4, False)
    assert versions(store) == seeded, "a dry run makes no table version"
    result = replay_quarantine(store, REPLAY, relaxed, row_group_rows=1024)
    assert (result.checked, result.moved, result.still_held, result.committed) == (7, 4, 3, True)
    assert result.files_replaced == 1  # the 1985-06 file; the 2024-12 one lost no row
    assert ids(store, QUARANTINE) == ["a-3", "a-4", "a-5"]
    assert ids(store, ARTICLES) == sorted(
        [f"a-{i}" for i in (0, 1, 2, *range(6, 12))] + [f"b-{i}" for i in range(5)]
    )
    # The remaining rows now name only what they still fail, under the suite that judged them.
    assert read_quarantine(store).column("failed_expectations").to_pylist() == [[URL_CHECK]] * 3
    # One version of each table, both naming the replay run; articles carries its report objects.
    assert versions(store) == {table: seeded[table] + 1 for table in TABLES}
    for table in TABLES:
        latest = commit_history(store, table, 1)[0]
        assert (latest[KIND_KEY], latest[RUN_ID_KEY]) == ("replay", REPLAY), table
    reports = reports_of(commit_history(store, ARTICLES, 1)[0])
    assert reports and all(store.get(key) is not None for key in reports)
    # Incremental readers of articles see the moved rows come in, and nothing else.
    changes = read_changes(store, seeded[ARTICLES], ARTICLES).rows
    assert set(changes.column("_change_type").to_pylist()) == {"insert"}
    assert sorted(changes.column("article_id").to_pylist()) == ["a-0", "a-1", "a-2", "b-0"]
    # The replaced quarantine file left the table but stays on the store until vacuum: the
    # previous version still reads every held row.
    assert len(replaced - live_keys(store, QUARANTINE)) == 1
    assert data_files(store, QUARANTINE) == replaced | live_keys(store, QUARANTINE)
    assert ids(store, QUARANTINE, seeded[QUARANTINE]) == HELD
    assert vacuum_lake(store, retention_hours=0) == sorted(replaced - live_keys(store, QUARANTINE))
    for table in TABLES:
        assert data_files(store, table) == live_keys(store, table), table
    assert ids(store, QUARANTINE) == ["a-3", "a-4", "a-5"]
    again = replay_quarantine(store, "20261123T020000Z-again", relaxed, row_group_rows=1024)
    assert (again.moved, again.committed) == (0, False)
    assert ids(store, ARTICLES).count("a-0") == 1


@pytest.mark.parametrize(("source_id", "moved"), [("b", ["b-0"]), ("a", ["a-0", "a-1", "a-2"])])
def test_replaying_one_source_keeps_every_held_row_of_the_others(
    tmp_path: Path, strict, relaxed, source_id: str, moved: list[str]
) -> None:
    """a-0..a-3 and b-0 share the 1985-06 quarantine file: replaying one source replaces that file,
    and the other source's rows in it go to the replacement untouched (not judged again)."""
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    shared = [f.key for f in live_files(store, QUARANTINE) if f.partition["published_month"] == "1985-06"]
    assert len(shared) == 1
    in_shared = read_quarantine(store).filter(pc.field("file") == shared[0])
    assert set(in_shared.column("source_id").to_pylist()) == {"a", "b"}
    result = replay_quarantine(store, REPLAY, relaxed, row_group_rows=1024, source_id=source_id)
    assert (result.moved, result.committed, result.files_replaced) == (len(moved), True, 1)
    assert ids(store, ARTICLES) == sorted(ACCEPTED + moved)
    assert ids(store, QUARANTINE) == sorted(set(HELD) - set(moved))
    other = "a" if source_id == "b" else "b"
    # The other source's held rows are all there, once, with the reasons they were held for.
    assert {k: v for k, v in reasons(store).items() if k.startswith(other)} == {
        k: v for k, v in REASONS.items() if k.startswith(other)
    }
    assert shared[0] not in live_keys(store, QUARANTINE)
    # Replaying the other source then moves its rows that pass, and nothing twice.
    replay_quarantine(store, "20261123T020000Z-other", relaxed, row_group_rows=1024, source_id=other)
    assert ids(store, QUARANTINE) == ["a-3", "a-4", "a-5"]
    assert ids(store, ARTICLES) == sorted(ACCEPTED + ["a-0", "a-1", "a-2", "b-0"])


def kill_before_commit_to(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the process as it is about to make its Delta commit to ``table`` (not a store write)."""
    import feedlake.tasks.lake.commit as commit_module

    real = commit_module.commit_files

    def commit_files(store: ObjectStore, to: str, *args: Any, **kwargs: Any) -> int | None:
        if to == table:
            raise Killed(f"killed before the commit to {table}")
        return real(store, to, *args, **kwargs)

    monkeypatch.setattr(commit_module, "commit_files", commit_files)


# A replay of every source on a folder and on S3; of one source (the file it shares with the other
# is replaced) on a folder.
CRASH_CASES = [("local", None), ("s3", None), ("local", "b")]


@pytest.mark.parametrize(("where", "source_id"), CRASH_CASES)
def test_kill_at_every_step_of_a_replay(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    strict,
    relaxed,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    source_id: str | None,
) -> None:
    lake_url = str(tmp_path / "lake") if where == "local" else request.getfixturevalue("s3_lake")

    def replay(store: ObjectStore, run_id: str) -> None:
        replay_quarantine(store, run_id, relaxed, row_group_rows=1024, source_id=source_id)

    clean = open_store(str(tmp_path / "clean"))
    seed(clean, strict)
    before = (ids(clean, ARTICLES), ids(clean, QUARANTINE))
    replay(clean, REPLAY)
    after = (ids(clean, ARTICLES), ids(clean, QUARANTINE))
    probe = CrashingStore(open_store(str(tmp_path / "probe")))
    seed(probe, strict)
    writes = probe.writes
    replay(probe, REPLAY)
    writes = probe.writes - writes
    assert writes >= 6  # the intent, two data files, two reports, the intent's removal
    # Every store write, then each Delta commit (delta-rs writes those itself): quarantine is
    # committed first, so a kill before the articles commit leaves the replay half made.
    crash_points: list[int | str] = [*range(writes), QUARANTINE, ARTICLES]
    for crash_at in crash_points:
        store = open_store(f"{lake_url}/case-{crash_at}")
        seed(store, strict)
        seeded = {table: live_keys(store, table) for table in TABLES}
        with monkeypatch.context() as patch:
            if isinstance(crash_at, str):
                kill_before_commit_to(crash_at, patch)
            crashing = CrashingStore(store, crash_at if isinstance(crash_at, int) else None)
            with pytest.raises(Killed):
                replay(crashing, REPLAY)
        recover_lake(store)
        # Rolled back or forward: each row in exactly one table, as before the replay or after it.
        now = (ids(store, ARTICLES), ids(store, QUARANTINE))
        assert now in (before, after), f"crash at {crash_at}: {now}"
        assert sorted(now[0] + now[1]) == sorted(ACCEPTED + HELD), f"crash at {crash_at}"
        for table in TABLES:
            live = live_keys(store, table)
            assert live <= data_files(store, table), f"{table}: a live file is missing, crash at {crash_at}"
            unaccounted = data_files(store, table) - live - seeded[table]
            assert unaccounted == set(), f"{table}: files no version names, crash at {crash_at}"
        assert store.list("_txn/") == []
        replay(store, "20261123T020000Z-rerun")
        assert (ids(store, ARTICLES), ids(store, QUARANTINE)) == after, f"crash at {crash_at}"
        # The report objects on the store are those of the one replay that committed.
        committed = [reports_of(c) for c in commit_history(store, ARTICLES) if c.get(KIND_KEY) == "replay"]
        assert len(committed) == 1, f"crash at {crash_at}"
        assert sorted(store.list(f"{VALIDATION}/")) == sorted(committed[0]), f"crash at {crash_at}"
        vacuum_lake(store, retention_hours=0)
        for table in TABLES:
            assert data_files(store, table) == live_keys(store, table), f"{table}, crash at {crash_at}"
        assert store.list("_txn/") == []
