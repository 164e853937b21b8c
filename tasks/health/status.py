"""The operator's view of source health: ok, failing, backing off, stale (and why), times with a zone.

A source is ``stale`` when its last success is older than ``stale_after`` of its poll intervals
although nothing says it is merely backing off: polls are not happening (the scheduler or
``feedlake serve`` is down) or they stopped reaching it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedlake.tasks.health.records import SourceHealth, format_utc, parse_utc


@dataclass(frozen=True)
class SourceStatus:
    """One source's state for people, with the reason when it needs attention."""

    source_id: str
    state: str
    why: str


def source_status(
    record: SourceHealth, now: datetime, interval_seconds: float, stale_after: float
) -> SourceStatus:
    """Classify one record: new, ok, failing, backing_off or stale, with the reason."""
    window = timedelta(seconds=interval_seconds * stale_after)
    attempt, success, due = (
        parse_utc(record.last_attempt_at),
        parse_utc(record.last_success_at),
        parse_utc(record.next_due_at),
    )
    if attempt is None:
        return SourceStatus(record.source_id, "new", "never polled")
    if due is not None and due > now:
        reason = f"{record.consecutive_failures} failures in a row; next try {format_utc(record.next_due_at)}"
        return SourceStatus(record.source_id, "backing_off", f"{reason} (last: {record.last_error})")
    if now - attempt > window:
        why = (
            f"no poll since {format_utc(record.last_attempt_at)} although it is polled every "
            f"{interval_seconds:g} s: is `feedlake serve` (or a worker and Prefect's scheduler) running?"
        )
        return SourceStatus(record.source_id, "stale", why)
    if record.consecutive_failures:
        return SourceStatus(record.source_id, "failing", record.last_error or "")
    if success is None or now - success > window:
        return SourceStatus(
            record.source_id, "stale", f"no success since {format_utc(record.last_success_at)}"
        )
    return SourceStatus(record.source_id, "ok", "")


STATUS_COLUMNS = ("source", "state", "last success", "last poll", "failures", "http", "items seen", "why")
_ORDER = {"stale": 0, "failing": 1, "backing_off": 2, "new": 3, "ok": 4}


def status_rows(
    health: Mapping[str, SourceHealth],
    now: datetime,
    intervals: Mapping[str, float],
    default_interval: float,
    stale_after: float,
) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """Rows for ``feedlake sources status`` (sources needing attention first) and a count per state."""
    rows: list[tuple[int, tuple[str, ...]]] = []
    counts: dict[str, int] = {}
    for record in health.values():
        interval = intervals.get(record.source_id, default_interval)
        status = source_status(record, now, interval, stale_after)
        counts[status.state] = counts.get(status.state, 0) + 1
        row = (
            record.source_id,
            status.state,
            format_utc(record.last_success_at),
            format_utc(record.last_attempt_at),
            str(record.consecutive_failures),
            str(record.last_status or "-"),
            str(record.items_seen),
            status.why[:110],
        )
        rows.append((_ORDER[status.state], row))
    rows.sort(key=lambda item: (item[0], item[1][0]))
    return [row for _, row in rows], counts
