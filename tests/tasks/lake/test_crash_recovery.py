"""Kill a poll or a compaction before every single write (table commits included), recover, rerun:
exactly one clean run, and no data file under a table that its log does not name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from feedlake.tasks.lake.commit import recover_lake
from feedlake.tasks.lake.compact import compact_lake, vacuum_lake
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import read_validators
from feedlake.tasks.lake.storage import open_store
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed, table_commits_counted
from tests.support.lake_ops import article_keys, physical_files, poll_once


@pytest.fixture(params=["local", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")


def batch(run: int) -> pa.Table:
    # Each poll sees 3 new articles of source a and re-sees the previous ones (a growing feed).
    return pa.concat_tables([make_rows("a", 3 * (run + 1)), make_rows("b", 2)])


def named(store) -> list[str]:  # noqa: ANN001
    return sorted(f.key for f in live_files(store, ARTICLES))


def test_kill_before_every_write_of_a_poll(
    lake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = open_store(str(tmp_path / "clean"))
    poll_once(clean, batch(0), "r0")
    poll_once(clean, batch(1), "r1")
    expected = article_keys(clean)
    with table_commits_counted(monkeypatch):
        probe = CrashingStore(open_store(str(tmp_path / "probe")))
        poll_once(probe, batch(0), "r0")
        before = probe.writes
        poll_once(probe, batch(1), "r1")
        writes_in_second_poll = probe.writes - before
        assert writes_in_second_poll >= 6
        for crash_at in range(writes_in_second_poll):
            base = open_store(f"{lake_url}/case-{crash_at}")
            poll_once(base, batch(0), "r0")
            with pytest.raises(Killed):
                poll_once(CrashingStore(base, crash_at), batch(1), "r1")
            poll_once(base, batch(1), "r1-rerun")  # the rerun recovers first
            assert article_keys(base) == expected, f"crash before write {crash_at}"
            assert physical_files(base) == named(base), f"crash {crash_at}"
            assert base.list("_txn/") == []
            assert len(read_seen(base, "a")) == 6
            assert read_validators(base, ["a"])["a"].etag in ('"r1"', '"r1-rerun"')


def test_kill_before_every_write_of_a_compaction(
    lake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = open_store(str(tmp_path / "seed"))
    for run in range(4):
        poll_once(seed, batch(run), f"r{run}")
    expected = article_keys(seed)
    with table_commits_counted(monkeypatch):
        probe = CrashingStore(open_store(str(tmp_path / "probe")))
        for run in range(4):
            poll_once(probe, batch(run), f"r{run}")
        before = probe.writes
        compact_lake(probe, "z1", target_bytes=1 << 20, row_group_rows=1024)
        writes = probe.writes - before
        for crash_at in range(writes):
            lake = open_store(f"{lake_url}/compact-{crash_at}")
            for run in range(4):
                poll_once(lake, batch(run), f"r{run}")
            polled = named(lake)
            with pytest.raises(Killed):
                compact_lake(CrashingStore(lake, crash_at), "z1", target_bytes=1 << 20, row_group_rows=1024)
            recover_lake(lake)
            # Whether rolled back or forward, readers see every row exactly once, and every file
            # under the table is named by the latest version or by the one before the compaction.
            assert article_keys(lake) == expected, f"crash before write {crash_at}"
            assert set(physical_files(lake)) <= set(named(lake)) | set(polled)
            compact_lake(lake, "z2", target_bytes=1 << 20, row_group_rows=1024)
            assert article_keys(lake) == expected
            assert len(named(lake)) == 1  # one month partition, one file
            vacuum_lake(lake, retention_hours=0)
            assert physical_files(lake) == named(lake)
            assert article_keys(lake) == expected
