"""A lake transaction: the one way every writer (poll, backfill, compaction, replay) holds the lake.

Take the lease for the run, finish or roll back whatever a dead run left half done (``recover_lake``),
run the caller's writes, and release the lease on the way out, whatever happened in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from feedlake.tasks.lake.commit import recover_lake
from feedlake.tasks.lake.lease import acquire_lease, release_lease
from feedlake.tasks.lake.storage import ObjectStore


@contextmanager
def lake_transaction(
    store: ObjectStore, run_id: str, lease_seconds: float, wait_seconds: float = 0.0
) -> Iterator[list[str]]:
    """Hold the lake's lease as ``run_id`` and yield what recovery did first (one line per action)."""
    acquire_lease(store, run_id, lease_seconds, wait_seconds)
    try:
        yield recover_lake(store)
    finally:
        release_lease(store, run_id)
