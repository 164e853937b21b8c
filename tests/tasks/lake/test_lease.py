"""The lake lease: one writer at a time, safe takeover of dead or expired holders, lost-lease fence."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from feedlake.tasks.errors import LakeBusyError
from feedlake.tasks.lake.layout import LEASE
from feedlake.tasks.lake.lease import acquire_lease, confirm_lease, release_lease
from feedlake.tasks.lake.storage import ObjectStore, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    url = str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")
    return open_store(url)


def test_lease_blocks_a_live_run_and_frees_a_dead_one(store: ObjectStore) -> None:
    acquire_lease(store, "one", 60)
    with pytest.raises(LakeBusyError, match="holds the lake"):
        acquire_lease(store, "two", 60)
    release_lease(store, "one")
    acquire_lease(store, "two", 60)
    lease = json.loads(store.get(LEASE) or b"{}")
    assert lease["run_id"] == "two"
    # A holder whose process is gone (kill -9) does not block the rerun.
    lease["pid"] = _dead_pid()
    store.put(LEASE, json.dumps(lease).encode())
    acquire_lease(store, "three", 60)
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == "three"


def test_expired_lease_is_taken_over(store: ObjectStore) -> None:
    store.put(
        LEASE,
        json.dumps(
            {"run_id": "old", "host": "elsewhere", "expires_at": "2000-01-01T00:00:00+00:00"}
        ).encode(),
    )
    acquire_lease(store, "new", 60)
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == "new"


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def lease_of(run_id: str, expires_at: str) -> bytes:
    return json.dumps({"run_id": run_id, "host": "elsewhere", "expires_at": expires_at}).encode()


def test_waiting_run_gets_the_lease_when_it_is_released(store: ObjectStore) -> None:
    acquire_lease(store, "one", 60)
    timer = threading.Timer(0.5, release_lease, args=(store, "one"))
    timer.start()
    acquire_lease(store, "two", 60, wait_seconds=10)
    timer.join()
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == "two"


def test_only_one_of_many_racing_takeovers_wins(store: ObjectStore) -> None:
    store.put(
        LEASE, json.dumps({"run_id": "dead", "host": "x", "expires_at": "2000-01-01T00:00:00+00:00"}).encode()
    )
    winners: list[str] = []

    def contend(name: str) -> None:
        try:
            acquire_lease(store, name, 60)
            winners.append(name)
        except LakeBusyError:
            pass

    threads = [threading.Thread(target=contend, args=(f"run{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert json.loads(store.get(LEASE) or b"{}")["run_id"] == winners[0]


def test_a_run_that_lost_its_lease_cannot_commit(store: ObjectStore) -> None:
    acquire_lease(store, "slow", 60)
    confirm_lease(store, "slow", 60)  # still ours: renewed
    store.put(
        LEASE,
        json.dumps({"run_id": "successor", "host": "x", "expires_at": "2999-01-01T00:00:00+00:00"}).encode(),
    )
    with pytest.raises(LakeBusyError, match="lost"):
        confirm_lease(store, "slow", 60)
