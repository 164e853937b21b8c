"""Quarantine: held rows are listed with reasons, and replay moves those that now pass exactly once."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedlake.tasks.lake.commit import commit_run, list_commits, live_files, recover_lake
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE
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


def ids(store: ObjectStore, table: str) -> list[str]:
    found = []
    for committed in live_files(store, table):
        found += pq.read_table(io.BytesIO(store.get(committed.key) or b"")).column("article_id").to_pylist()
    return sorted(found)


def test_held_rows_are_read_back_with_reasons_and_partitions(tmp_path: Path, strict) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    held = read_quarantine(store)
    reasons = dict(
        zip(
            held.column("article_id").to_pylist(), held.column("failed_expectations").to_pylist(), strict=True
        )
    )
    assert reasons == {
        "a-0": [DATE_CHECK],
        "a-1": [DATE_CHECK],
        "a-2": [DATE_CHECK],
        "a-3": [URL_CHECK, DATE_CHECK],
        "a-4": [URL_CHECK],
        "a-5": [URL_CHECK],
        "b-0": [DATE_CHECK],
    }
    assert set(held.column("published_date").to_pylist()) >= {OLD.date()}
    assert set(held.column("stage").to_pylist()) == {"validate"}
    assert read_quarantine(store, "b").column("article_id").to_pylist() == ["b-0"]
    assert ids(store, ARTICLES) == sorted([f"a-{i}" for i in range(6, 12)] + [f"b-{i}" for i in range(1, 5)])


def test_replay_without_a_fix_moves_nothing_and_writes_nothing(tmp_path: Path, strict) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    before = store.list("")
    result = replay_quarantine(store, "20261123T010000Z-replay", strict, row_group_rows=1024)
    assert (result.checked, result.moved, result.still_held, result.committed) == (7, 0, 7, False)
    assert store.list("") == before


def test_replay_after_a_fix_moves_exactly_the_rows_that_now_pass(tmp_path: Path, strict, relaxed) -> None:
    store = open_store(str(tmp_path / "lake"))
    seed(store, strict)
    dry = replay_quarantine(store, "20261123T005900Z-dry", relaxed, row_group_rows=1024, dry_run=True)
    assert (dry.moved, dry.committed) == (4, False) and len(list_commits(store)) == 1
    result = replay_quarantine(store, "20261123T010000Z-replay", relaxed, row_group_rows=1024)
    assert (result.checked, result.moved, result.still_held, result.committed) == (7, 4, 3, True)
    assert ids(store, QUARANTINE) == ["a-3", "a-4", "a-5"]
    assert ids(store, ARTICLES) == sorted(
        [f"a-{i}" for i in (0, 1, 2, *range(6, 12))] + [f"b-{i}" for i in range(5)]
    )
    # The remaining rows now name only what they still fail, under the suite that judged them.
    held = read_quarantine(store)
    assert held.column("failed_expectations").to_pylist() == [[URL_CHECK]] * 3
    record = list_commits(store)[-1]
    assert record.kind == "replay" and record.removed and record.reports
    assert store.get(record.reports[0]) is not None
    # Only live files remain on disk: the replaced quarantine files are gone.
    assert sorted(store.list(f"{QUARANTINE}/")) == sorted(f.key for f in live_files(store, QUARANTINE))
    again = replay_quarantine(store, "20261123T020000Z-again", relaxed, row_group_rows=1024)
    assert (again.moved, again.committed) == (0, False)
    assert ids(store, ARTICLES).count("a-0") == 1


@pytest.fixture(params=["local", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")


def test_kill_before_every_write_of_a_replay(lake_url: str, tmp_path: Path, strict, relaxed) -> None:
    clean = open_store(str(tmp_path / "clean"))
    seed(clean, strict)
    replay_quarantine(clean, "20261123T010000Z-replay", relaxed, row_group_rows=1024)
    expected = (ids(clean, ARTICLES), ids(clean, QUARANTINE))
    probe = CrashingStore(open_store(str(tmp_path / "probe")))
    seed(probe, strict)
    before = probe.writes
    replay_quarantine(probe, "20261123T010000Z-replay", relaxed, row_group_rows=1024)
    writes = probe.writes - before
    assert writes >= 6
    for crash_at in range(writes):
        store = open_store(f"{lake_url}/case-{crash_at}")
        seed(store, strict)
        with pytest.raises(Killed):
            replay_quarantine(
                CrashingStore(store, crash_at), "20261123T010000Z-replay", relaxed, row_group_rows=1024
            )
        recover_lake(store)
        replay_quarantine(store, "20261123T020000Z-rerun", relaxed, row_group_rows=1024)
        assert (ids(store, ARTICLES), ids(store, QUARANTINE)) == expected, f"crash before write {crash_at}"
        for table in (ARTICLES, QUARANTINE):
            assert sorted(store.list(f"{table}/")) == sorted(f.key for f in live_files(store, table))
        assert store.list("_txn/") == []
