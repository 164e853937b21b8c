"""The lake's lease: one run at a time writes a lake, and a dead run's lease is taken over safely.

The lease is one object (``_lease.json``): created with If-None-Match, renewed and taken over with
If-Match on the ETag just read, so two runs can never both believe they hold it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from feedlake.tasks.errors import LakeBusyError
from feedlake.tasks.lake.layout import LEASE
from feedlake.tasks.lake.storage import ObjectStore, decode_json_object

log = logging.getLogger(__name__)


def acquire_lease(store: ObjectStore, run_id: str, seconds: float, wait_seconds: float = 0.0) -> None:
    """Take the lake's lease for this run, waiting up to ``wait_seconds`` for a live holder.

    A holder that expired, or whose process is gone from this machine, is taken over at once.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        holder = _try_lease(store, run_id, seconds)
        if holder is None:
            return
        if time.monotonic() >= deadline:
            raise LakeBusyError(
                f"run {holder.get('run_id')} on {holder.get('host')} holds the lake until "
                f"{holder.get('expires_at')}; wait for it, or remove {store.uri(LEASE)} if it is gone"
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def confirm_lease(store: ObjectStore, run_id: str, seconds: float) -> None:
    """Check this run still holds the lease and extend it; raise LakeBusyError if it was lost."""
    current = store.get_versioned(LEASE)
    holder = decode_json_object(current[0]) if current is not None else None
    if current is None or holder is None or holder.get("run_id") != run_id:
        raise LakeBusyError(f"run {run_id} lost the lake's lease (it expired and was taken over)")
    body = _lease_body(run_id, seconds)
    # A False may also mean our own write landed and its answer was lost, so look before giving up.
    if not store.put_if_match(LEASE, body, current[1]) and store.get(LEASE) != body:
        raise LakeBusyError(f"run {run_id} lost the lake's lease while renewing it")


def release_lease(store: ObjectStore, run_id: str) -> None:
    """Give the lease back if this run still holds it."""
    raw = store.get(LEASE)
    holder = decode_json_object(raw) if raw is not None else None
    if holder is not None and holder.get("run_id") == run_id:
        store.delete(LEASE)


def _try_lease(store: ObjectStore, run_id: str, seconds: float) -> dict[str, object] | None:
    # None when acquired; otherwise the live holder's lease.
    body = _lease_body(run_id, seconds)
    if store.put_if_absent(LEASE, body):
        return None
    current = store.get_versioned(LEASE)
    if current is None:  # released between our two requests: try again from the start
        return _try_lease(store, run_id, seconds)
    holder = decode_json_object(current[0]) or {}
    if holder.get("run_id") == run_id:
        return None  # our own create, answered 412 on a retried PUT
    if not _lease_is_dead(holder, datetime.now(UTC)):
        return holder
    if store.put_if_match(LEASE, body, current[1]) or store.get(LEASE) == body:
        log.warning("took over the expired or orphaned lease of run %s", holder.get("run_id"))
        return None
    return decode_json_object(store.get(LEASE) or b"") or holder


def _lease_body(run_id: str, seconds: float) -> bytes:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    lease = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "expires_at": expires.isoformat(),
    }
    return json.dumps(lease).encode()


def _lease_is_dead(holder: Mapping[str, object], now: datetime) -> bool:
    try:
        expires = datetime.fromisoformat(str(holder.get("expires_at")))
    except ValueError:
        return True
    if expires <= now:
        return True
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int):
        # Same machine: a holder whose process is gone (killed, crashed) frees the lake at once.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False
