"""Per-source health, kept in the lake: last success, last error, failures in a row, next due time.

A failing source backs off exponentially (capped) but is always retried when due; it never
silently stops. All sources' health is one object (``_state/health.json``), written once per run,
so an unchanged feed (a 304) still costs no write of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from tasks.run import SourceReport
from tasks.sources import Source
from tasks.storage import ObjectStore, update_object

HEALTH_KEY = "_state/health.json"


@dataclass(frozen=True)
class SourceHealth:
    """What the lake remembers about one source's recent polls."""

    source_id: str
    url: str
    last_attempt_at: str | None = None
    last_success_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    consecutive_failures: int = 0
    items_seen: int = 0
    last_items: int | None = None
    next_due_at: str | None = None
    effective_url: str | None = None
    previous_urls: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """``ok``, ``failing`` or ``new`` (never polled)."""
        if self.last_attempt_at is None:
            return "new"
        return "failing" if self.consecutive_failures else "ok"


def read_health(store: ObjectStore) -> dict[str, SourceHealth]:
    """Every source's health record, by source id."""
    raw = store.get(HEALTH_KEY)
    return {} if raw is None else read_health_bytes(raw)


def split_due(
    sources: Sequence[Source], health: Mapping[str, SourceHealth], now: datetime
) -> tuple[list[Source], list[Source]]:
    """Sources to poll now, and failing sources still backing off."""
    due, waiting = [], []
    for source in sources:
        record = health.get(source.id)
        if record and record.next_due_at and datetime.fromisoformat(record.next_due_at) > now:
            waiting.append(source)
        else:
            due.append(source)
    return due, waiting


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """Delay before the next try after ``failures`` failures in a row: base, 2x, 4x, ... up to cap."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


def updated_health(
    previous: Mapping[str, SourceHealth],
    sources: Iterable[Source],
    reports: Iterable[SourceReport],
    now: datetime,
    base: float,
    cap: float,
) -> dict[str, SourceHealth]:
    """The health records after a run, from the previous ones and this run's reports."""
    by_id = {s.id: s for s in sources}
    health = dict(previous)
    for report in reports:
        if report.status in ("pending", "backing_off") or report.source_id not in by_id:
            continue
        source = by_id[report.source_id]
        record = health.get(report.source_id) or SourceHealth(report.source_id, source.url)
        if record.url != source.url:
            # The sources file now names another URL: it wins over a redirect we followed before.
            record = replace(record, effective_url=None)
        if report.moved_to is not None and report.moved_to != (record.effective_url or source.url):
            moved_from = record.effective_url or source.url
            record = replace(
                record, effective_url=report.moved_to, previous_urls=(*record.previous_urls, moved_from)
            )
        record = replace(
            record, url=source.url, last_attempt_at=now.isoformat(), last_status=report.http_status
        )
        if report.status == "error":
            failures = record.consecutive_failures + 1
            due = now + timedelta(seconds=backoff_seconds(failures, base, cap))
            record = replace(
                record,
                last_error=report.error,
                last_error_kind=report.error_kind,
                consecutive_failures=failures,
                next_due_at=due.isoformat(),
            )
        else:
            record = replace(
                record,
                last_success_at=now.isoformat(),
                consecutive_failures=0,
                items_seen=record.items_seen + report.fetched,
                next_due_at=None,
            )
            if report.status == "ok":
                # Only a parsed feed says how many items it holds; a 304 says nothing new.
                record = replace(record, last_items=report.fetched)
        health[report.source_id] = record
    return health


def write_health(store: ObjectStore, changes: Mapping[str, SourceHealth]) -> None:
    """Merge this run's records into the lake's health object (If-Match, re-read on conflict)."""

    def merge(current: bytes | None) -> bytes:
        merged = {k: asdict(v) for k, v in read_health_bytes(current).items()} if current else {}
        merged.update({k: asdict(v) for k, v in changes.items()})
        return json.dumps(merged, sort_keys=True, indent=1).encode()

    update_object(store, HEALTH_KEY, merge, "the health records")


def read_health_bytes(raw: bytes) -> dict[str, SourceHealth]:
    """Parse the health object's body."""
    records = {}
    for source_id, fields in json.loads(raw).items():
        fields["previous_urls"] = tuple(fields.get("previous_urls") or ())
        records[source_id] = SourceHealth(**fields)
    return records


def fetch_targets(sources: Sequence[Source], health: Mapping[str, SourceHealth]) -> list[Source]:
    """The sources to fetch, each at the URL it permanently moved to, if it did."""
    targets = []
    for source in sources:
        record = health.get(source.id)
        if record and record.effective_url and record.url == source.url:
            targets.append(replace(source, url=record.effective_url))
        else:
            targets.append(source)
    return targets


def mark_backing_off(
    reports: Mapping[str, SourceReport], waiting: Iterable[Source], health: Mapping[str, SourceHealth]
) -> None:
    """Report each source still backing off, with when it is next tried and why it failed."""
    for source in waiting:
        record = health[source.id]
        report = reports[source.id]
        report.status = "backing_off"
        report.error_kind = record.last_error_kind
        report.error = (
            f"{record.consecutive_failures} failures in a row; next try after {record.next_due_at} "
            f"(last: {record.last_error})"
        )


HEALTH_COLUMNS = (
    "source",
    "state",
    "last success",
    "failures",
    "http",
    "items seen",
    "next try",
    "last error",
)


def health_rows(health: Mapping[str, SourceHealth]) -> list[tuple[str, ...]]:
    """One row per source for people to read, failing sources first."""
    return [
        (
            h.source_id,
            h.state,
            (h.last_success_at or "-")[:19],
            str(h.consecutive_failures),
            str(h.last_status or "-"),
            str(h.items_seen),
            (h.next_due_at or "when polled")[:19],
            (h.last_error or "")[:70] if h.consecutive_failures else "",
        )
        for h in sorted(health.values(), key=lambda h: (h.state != "failing", h.source_id))
    ]
