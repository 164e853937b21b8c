"""feedlake migrate: a lake written by the release before Delta tables becomes the Delta tables.

The fixture (tests/cases/legacy_lake, see its README) was written by the real previous releases:
schema v1 rows, schema v2 rows, an edit, a quarantined row, a compaction (a record with ``removed``)
and a poll killed at its commit point (a data file and an intent no record names).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from feedlake.schemas.article import ARTICLE_SCHEMA, PARTITION_COLUMN, published_months, row_keys
from feedlake.tasks.errors import DamagedObjectError, StoreError
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES, LEGACY_COMMITS, QUARANTINE, TXN, new_run_id, seen_key
from feedlake.tasks.lake.legacy_layout import (
    LEGACY_TABLES,
    ROW_SCHEMAS,
    read_legacy_tables,
)
from feedlake.tasks.lake.migrate import MIGRATE_KIND, migrate_lake
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.storage import LocalStore, ObjectStore, open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.lake.write import encode_parquet
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import poll_once
from tests.support.paths import CASES

FIXTURE = CASES / "legacy_lake" / "lake"
# What the fixture holds (README): 18 items of the first poll, the edited xkcd item, one row held.
ARTICLE_ROWS = 19
QUARANTINE_ROWS = 1
# The data file of the poll killed at its commit point: on the store, named by no record.
ORPHAN = "articles/source_id=afmil-news/published_date=2016-01-12/part-26eabbe607d6e6e6caebf406.parquet"
# The row identity every check compares, as a multiset.
COMPARED = ("source_id", "article_id", "content_hash", "run_id", "published_date", "content_text")


def legacy_copy(tmp_path: Path) -> LocalStore:
    """A fresh copy of the fixture lake."""
    root = tmp_path / "lake"
    shutil.copytree(FIXTURE, root)
    return LocalStore(root)


def migrate(store: ObjectStore, lease_seconds: float = 60, wait_seconds: float = 0):
    """Migrate under the lake's lease after recovery, as ``feedlake migrate`` does."""
    with lake_transaction(store, new_run_id(), lease_seconds, wait_seconds):
        return migrate_lake(store)


def rows_of(table: pa.Table) -> Counter[tuple[object, ...]]:
    return Counter(zip(*(table.column(name).to_pylist() for name in COMPARED), strict=True))


def committed_by_pyarrow(root: Path, table: str) -> pa.Table:
    """The fixture's live rows read independently: the records replayed with json, exactly the
    files they name read by pyarrow's dataset with Hive partitioning."""
    live: dict[str, None] = {}
    for record_path in sorted((root / LEGACY_COMMITS).glob("*.json")):
        record = json.loads(record_path.read_text())
        for gone in record["removed"]:
            live.pop(gone, None)
        live.update({f["key"]: None for f in record["files"] if f["table"] == table})
    partitioning = ds.partitioning(
        pa.schema([("source_id", pa.string()), ("published_date", pa.date32())]), flavor="hive"
    )
    parts = [
        ds.dataset(
            root / key, format="parquet", partitioning=partitioning, partition_base_dir=str(root / table)
        )
        .to_table()
        .select(list(COMPARED))
        for key in live
    ]
    return pa.concat_tables(parts)


def delta_rows(store: ObjectStore, table: str) -> pa.Table:
    return DeltaTable(store.uri(table), storage_options=store.delta_options()).to_pyarrow_table()


def data_files(store: ObjectStore, table: str) -> list[str]:
    return [k for k in store.list(f"{table}/") if "/_delta_log/" not in k]


def assert_migrated_once(store: ObjectStore, expected: dict[str, pa.Table]) -> None:
    """Each table holds exactly the legacy rows, once; nothing of the old layout is left."""
    for table in LEGACY_TABLES:
        migrated = delta_rows(store, table)
        assert rows_of(migrated) == rows_of(expected[table]), table
        assert sorted(data_files(store, table)) == sorted(f.key for f in live_files(store, table))
    assert store.list(f"{LEGACY_COMMITS}/") == []
    assert store.list(f"{TXN}/") == []


@pytest.fixture(scope="module")
def legacy_rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    """The fixture's live rows, read by legacy_layout from an untouched copy."""
    return read_legacy_tables(legacy_copy(tmp_path_factory.mktemp("legacy")))


def test_the_legacy_reader_reads_exactly_the_committed_files(legacy_rows, tmp_path: Path) -> None:
    store = legacy_copy(tmp_path)
    assert legacy_rows[ARTICLES].num_rows == ARTICLE_ROWS
    assert legacy_rows[QUARANTINE].num_rows == QUARANTINE_ROWS
    for table in LEGACY_TABLES:
        assert legacy_rows[table].schema == ROW_SCHEMAS[table]
        assert rows_of(legacy_rows[table]) == rows_of(committed_by_pyarrow(store.root, table))
    titles = legacy_rows[ARTICLES].column("title").to_pylist()
    # Both versions of the edited item (merged into one file by compaction), and nothing of the
    # poll that died before its commit record, although its data file is on the store.
    assert "Oort Cloud" in titles and "Oort Cloud (edited)" in titles
    assert "A news item of the crashed run" not in titles
    orphan = pq.read_table(store.root / ORPHAN)
    assert orphan.column("title").to_pylist() == ["A news item of the crashed run"]
    # Schema v1 rows (the first poll's) read with the page columns null; v2 rows say "feed".
    sources = Counter(legacy_rows[ARTICLES].column("content_source").to_pylist())
    assert sources[None] == ARTICLE_ROWS - 1 and sources["feed"] == 1
    held = legacy_rows[QUARANTINE].to_pylist()[0]
    assert held["published_date"].year == 1985 and held["failed_expectations"] and held["stage"]


def test_migration_commits_every_row_once_and_leaves_nothing_of_the_old_layout(
    legacy_rows, tmp_path: Path
) -> None:
    store = legacy_copy(tmp_path)
    result = migrate(store)
    assert result.rows == {ARTICLES: ARTICLE_ROWS, QUARANTINE: QUARANTINE_ROWS}
    assert result.legacy_files == {ARTICLES: 18, QUARANTINE: 1}
    assert result.keys_indexed == 0 and not result.resumed
    # The live files of both tables (recovery rolled back the killed poll's orphan first), 3 records.
    assert result.files_deleted == 19 and result.records_deleted == 3
    text = result.describe()
    assert f"articles: {ARTICLE_ROWS} rows, 18 files -> {result.delta_files[ARTICLES]} files" in text
    assert "deleted 19 data files of the old layout and 3 objects under _commits/" in text
    assert_migrated_once(store, legacy_rows)
    # Every column, not only the compared ones: the rows are the legacy rows, with their month.
    for table in LEGACY_TABLES:
        migrated = delta_rows(store, table)
        assert (
            migrated.column(PARTITION_COLUMN).to_pylist()
            == published_months(migrated.column("published_date")).to_pylist()
        )
        order = [("article_id", "ascending"), ("content_hash", "ascending")]
        got = migrated.drop_columns([PARTITION_COLUMN]).cast(ROW_SCHEMAS[table]).sort_by(order)
        assert got.to_pylist() == legacy_rows[table].sort_by(order).to_pylist()
    history = DeltaTable(store.uri(ARTICLES)).history()
    assert [c.get("feedlake.kind") for c in history][:2] == [MIGRATE_KIND, "create"]
    assert history[0]["version"] == result.version


def test_a_second_migration_is_a_no_op(legacy_rows, tmp_path: Path) -> None:
    store = legacy_copy(tmp_path)
    migrate(store)
    versions = {table: DeltaTable(store.uri(table)).version() for table in LEGACY_TABLES}
    objects = store.list("")
    again = migrate(store)
    assert not again.migrated
    assert again.describe().startswith("nothing to migrate")
    assert {table: DeltaTable(store.uri(table)).version() for table in LEGACY_TABLES} == versions
    assert store.list("") == objects
    assert_migrated_once(store, legacy_rows)


def test_a_poll_after_migration_dedups_against_the_kept_seen_index(legacy_rows, tmp_path: Path) -> None:
    store = legacy_copy(tmp_path)
    migrate(store)
    known = delta_rows(store, ARTICLES).filter(pc.equal(pc.field("source_id"), "xkcd"))
    known = known.drop_columns([PARTITION_COLUMN]).cast(ARTICLE_SCHEMA)
    fresh = make_rows("fresh", 3, run_id="after")
    poll_once(store, pa.concat_tables([known, fresh]), new_run_id())
    rows = delta_rows(store, ARTICLES)
    assert rows.num_rows == ARTICLE_ROWS + 3
    assert len(pc.unique(row_keys(rows))) == rows.num_rows
    assert rows_of(rows) == rows_of(legacy_rows[ARTICLES]) + rows_of(fresh)


def test_keys_missing_from_the_seen_index_are_merged_in(tmp_path: Path) -> None:
    # An old run that died after its commit record and before its state: its keys never reached
    # the index. The migration adds them, so the next poll does not take those rows in again.
    store = legacy_copy(tmp_path)
    index = pq.read_table(store.root / seen_key("xkcd"))
    dropped = index.column("key")[0].as_py()
    pq.write_table(index.slice(1), store.root / seen_key("xkcd"))
    result = migrate(store)
    assert result.keys_indexed == 1
    assert "added 1 row keys the seen index lacked" in result.describe()
    assert dropped in read_seen(store, "xkcd").to_pylist()


def test_every_crash_then_a_rerun_migrates_each_row_exactly_once(legacy_rows, tmp_path: Path) -> None:
    clean = CrashingStore(legacy_copy(tmp_path / "clean"))
    migrate(clean)
    writes = clean.writes
    assert writes > 30  # lease, recovery, intent, data files, deletions
    for crash_at in range(writes + 1):
        real = legacy_copy(tmp_path / f"crash-{crash_at}")
        crashing = CrashingStore(real, crash_at=crash_at)
        try:
            # A short lease: a kill at its release leaves it behind, and the rerun waits it out.
            migrate(crashing, lease_seconds=0.5)
        except Killed:
            pass
        else:
            assert crash_at == writes, f"write {crash_at} of {writes} never happened"
        rerun = migrate(real, wait_seconds=10)
        assert_migrated_once(real, legacy_rows)
        assert crash_at < writes or not rerun.migrated
        shutil.rmtree(real.root)


def test_a_kill_between_the_two_table_commits_is_rolled_forward(
    legacy_rows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # delta-rs writes the log itself (no store write to kill): the kill comes at the articles
    # commit, after the quarantine commit landed.
    import feedlake.tasks.lake.commit as commit_module

    made = commit_module.commit_files

    def dies_at_articles(store, table, *args, **kwargs):
        if table == ARTICLES:
            raise Killed("killed before the articles commit")
        return made(store, table, *args, **kwargs)

    store = legacy_copy(tmp_path)
    monkeypatch.setattr(commit_module, "commit_files", dies_at_articles)
    with pytest.raises(Killed):
        migrate(store)
    monkeypatch.undo()
    assert rows_of(delta_rows(store, QUARANTINE)) == rows_of(legacy_rows[QUARANTINE])
    assert not (store.root / ARTICLES / "_delta_log").exists()
    rerun = migrate(store)
    assert rerun.resumed
    assert_migrated_once(store, legacy_rows)


def test_a_lake_polled_by_the_new_release_before_migrating_keeps_both(legacy_rows, tmp_path: Path) -> None:
    store = legacy_copy(tmp_path)
    fresh = make_rows("fresh", 2, run_id="before")
    poll_once(store, fresh, new_run_id())
    migrate(store)
    assert rows_of(delta_rows(store, ARTICLES)) == rows_of(legacy_rows[ARTICLES]) + rows_of(fresh)
    assert store.list(f"{LEGACY_COMMITS}/") == []
    assert sorted(data_files(store, ARTICLES)) == sorted(f.key for f in live_files(store, ARTICLES))


def test_nothing_to_migrate_in_an_empty_lake_or_a_delta_lake(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    assert migrate(store).describe().startswith("nothing to migrate")
    poll_once(store, make_rows("a", 2), new_run_id())
    versions = DeltaTable(store.uri(ARTICLES)).version()
    result = migrate(store)
    assert not result.migrated and DeltaTable(store.uri(ARTICLES)).version() == versions


def test_old_files_without_records_are_left_in_place(tmp_path: Path) -> None:
    # No record says whether they hold rows (the log was removed by hand): keep them, and say so.
    store = legacy_copy(tmp_path)
    for key in store.list(f"{LEGACY_COMMITS}/"):
        store.delete(key)
    before = data_files(store, ARTICLES)
    result = migrate(store)
    # The live files of both tables; recovery rolled back the killed poll's orphan first.
    assert not result.migrated and result.left_in_place == len(before) - 1 + QUARANTINE_ROWS
    assert "left in place" in result.describe()
    assert not (store.root / ARTICLES / "_delta_log").exists()


def test_a_schema_v1_file_reads_with_null_page_columns(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    v1 = make_rows("s", 2).drop_columns(["source_id", "published_date", "content_source", "page_url"])
    key = "articles/source_id=s/published_date=2024-12-08/part-x.parquet"
    store.put(key, encode_parquet(v1, 1024))
    record = {
        "run_id": "r",
        "committed_at": "",
        "files": [{"key": key, "source_id": "s", "rows": 2, "table": "articles"}],
    }
    store.put(f"{LEGACY_COMMITS}/r.json", json.dumps(record).encode())
    rows = read_legacy_tables(store)[ARTICLES]
    assert rows.schema == ARTICLE_SCHEMA
    assert rows.column("content_source").null_count == 2 and rows.column("page_url").null_count == 2
    assert set(rows.column("source_id").to_pylist()) == {"s"}
    assert {d.isoformat() for d in rows.column("published_date").to_pylist()} == {"2024-12-08"}


def test_a_damaged_record_or_a_missing_live_file_stops_the_migration(tmp_path: Path) -> None:
    store = legacy_copy(tmp_path / "damaged")
    first = store.list(f"{LEGACY_COMMITS}/")[0]
    store.put(first, b"{not json")
    with pytest.raises(DamagedObjectError, match="not a commit record"):
        migrate(store)
    assert store.get(first) == b"{not json" and not (store.root / ARTICLES / "_delta_log").exists()
    store = legacy_copy(tmp_path / "missing")
    live = next(k for k in data_files(store, ARTICLES) if "xkcd" in k)
    store.delete(live)
    with pytest.raises(StoreError, match="is missing"):
        migrate(store)
    assert len(store.list(f"{LEGACY_COMMITS}/")) == 3


def test_migration_of_a_lake_on_s3(legacy_rows, s3_lake: str) -> None:
    bucket, _, prefix = s3_lake.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    for path in sorted(p for p in FIXTURE.rglob("*") if p.is_file()):
        client.put_object(
            Bucket=bucket, Key=f"{prefix}/{path.relative_to(FIXTURE).as_posix()}", Body=path.read_bytes()
        )
    store = open_store(s3_lake)
    result = migrate(store)
    assert result.rows == {ARTICLES: ARTICLE_ROWS, QUARANTINE: QUARANTINE_ROWS}
    for table in LEGACY_TABLES:
        rows = DeltaTable(store.uri(table), storage_options=store.delta_options()).to_pyarrow_table()
        assert rows_of(rows) == rows_of(legacy_rows[table])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]
    assert not [k for k in keys if "/source_id=" in k or f"/{LEGACY_COMMITS}/" in k]
    assert_migrated_once(store, legacy_rows)
    assert not migrate(store).migrated


def test_the_fixture_is_small_and_holds_no_lease() -> None:
    files = [p for p in FIXTURE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    assert not [p for p in files if p.name in ("_lease.json", ".feedlake.lock")]
