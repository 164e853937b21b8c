"""lake.transaction: one lease per writer, recovery first, the lease released whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.tasks.errors import LakeBusyError
from feedlake.tasks.lake.layout import LEASE
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.lake.transaction import lake_transaction
from tests.support.article_rows import make_rows
from tests.support.crash_store import CrashingStore, Killed
from tests.support.lake_ops import article_keys, poll_once


def test_the_lease_is_held_inside_and_released_after(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    with lake_transaction(store, "20260101T000000000000Z-a", 60) as recovered:
        assert recovered == []
        assert store.get(LEASE) is not None
        with pytest.raises(LakeBusyError), lake_transaction(store, "20260101T000000000000Z-b", 60):
            pass
    assert store.get(LEASE) is None


def test_the_lease_is_released_when_the_writes_fail(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    with pytest.raises(RuntimeError, match="boom"), lake_transaction(store, "20260101T000000000000Z-a", 60):
        raise RuntimeError("boom")
    with lake_transaction(store, "20260101T000000000000Z-b", 60):
        pass


def test_a_dead_runs_half_commit_is_recovered_before_the_next_writer(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    rows = make_rows("src", 20)
    # Kill the commit after its first write (the transaction's intent): the lake holds half a run.
    with pytest.raises(Killed):
        poll_once(CrashingStore(store, crash_at=1), rows, "20260101T000000000000Z-dead")
    assert store.list("_txn/"), "the dead run left its intent"
    with lake_transaction(store, "20260101T000001000000Z-next", 60) as recovered:
        assert recovered, "the dead run's transaction was neither finished nor rolled back"
    assert store.list("_txn/") == []
    keys = article_keys(store)
    assert len(keys) in (0, 20), "a run is visible whole or not at all"
    assert len(keys) == len(set(keys))
