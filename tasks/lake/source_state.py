"""Per-source feed state kept in the lake: the HTTP validators of the last fetch, and damaged objects.

State is only ever written after the table commits of the run it describes (see ``commit``; a run
without rows writes it directly), and every write here is idempotent, so re-applying a commit
after a crash changes nothing.

Damage: an object whose bytes do not decode raises ``DamagedObjectError`` naming its key. A
damaged feed state is moved aside with ``set_aside`` (copied under ``_state/damaged/``, never
deleted) and the feed fetched again; ``keep_damaged_copy`` keeps the bytes of any damaged object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.layout import (
    feed_state_key,
)
from feedlake.tasks.lake.storage import ObjectStore, update_object
from feedlake.tasks.values import FeedValidators

DAMAGED = "_state/damaged"
_STAMP = re.compile(r"[0-9]{8}T[0-9]{12}Z")


def read_validators(store: ObjectStore, source_ids: Iterable[str]) -> dict[str, FeedValidators]:
    """Return the stored ETag / Last-Modified of each source that has any."""
    found: dict[str, FeedValidators] = {}
    for source_id in source_ids:
        value = read_source_validators(store, source_id)
        if value is not None:
            found[source_id] = value
    return found


def read_source_validators(store: ObjectStore, source_id: str) -> FeedValidators | None:
    """Return one source's stored validators (None if it has none); DamagedObjectError if unreadable."""
    key = feed_state_key(source_id)
    raw = store.get(key)
    return None if raw is None else _feed_state(raw, key, source_id).validators


def set_aside(store: ObjectStore, key: str, now: datetime | None = None) -> str:
    """Move a damaged object to ``_state/damaged/<key>.<UTC stamp>`` (copied, then removed); return
    the new key. Its bytes are kept for a person to look at: feedlake never deletes them."""
    raw = store.get(key)
    if raw is None:
        return _damaged_copy_key(key, now)
    moved = keep_damaged_copy(store, key, raw, now)
    store.delete(key)
    return moved


def keep_damaged_copy(store: ObjectStore, key: str, raw: bytes, now: datetime | None = None) -> str:
    """Copy a damaged object's bytes to ``_state/damaged/<key>.<UTC stamp>``; return the copy's key.

    A copy with the same bytes is reused: a repair killed after its copy and rerun keeps one copy."""
    for existing in store.list(f"{DAMAGED}/{key}."):
        if _STAMP.fullmatch(existing[len(DAMAGED) + len(key) + 2 :]) and store.get(existing) == raw:
            return existing
    moved = _damaged_copy_key(key, now)
    store.put(moved, raw)
    return moved


def _damaged_copy_key(key: str, now: datetime | None) -> str:
    return f"{DAMAGED}/{key}.{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}"


@dataclass(frozen=True)
class _FeedState:
    validators: FeedValidators
    run_id: str


def _feed_state(raw: bytes, key: str, source_id: str | None = None) -> _FeedState:
    """Decode a feed state object, checking every field's type."""
    try:
        state = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedObjectError(key, f"not JSON ({exc})", source_id=source_id) from None
    if not isinstance(state, dict):
        raise DamagedObjectError(key, "not a JSON object", source_id=source_id)
    etag, modified, run_id = state.get("etag"), state.get("last_modified"), state.get("run_id", "")
    if not all(v is None or isinstance(v, str) for v in (etag, modified, run_id)):
        raise DamagedObjectError(key, "etag, last_modified and run_id must be strings", source_id=source_id)
    return _FeedState(FeedValidators(etag=etag, last_modified=modified), str(run_id or ""))


def write_validators(store: ObjectStore, validators: Mapping[str, FeedValidators], run_id: str) -> None:
    """Store each source's validators from ``run_id``, unless a later run already stored newer ones."""
    for source_id, value in validators.items():
        document = {"etag": value.etag, "last_modified": value.last_modified, "run_id": run_id}
        body = json.dumps(document, sort_keys=True).encode()

        def newer_wins(current: bytes | None, body: bytes = body, source_id: str = source_id) -> bytes | None:
            # Run ids sort by start time: a later run's validators stay. A damaged object is
            # overwritten: it holds nothing a later run could need (the run start sets it aside).
            if current is None:
                return body
            try:
                stored = _feed_state(current, feed_state_key(source_id)).run_id
            except DamagedObjectError:
                return body
            return None if stored > run_id else body

        update_object(store, feed_state_key(source_id), newer_wins, f"feed state of {source_id}")
