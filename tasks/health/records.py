"""Per-source health, kept in the lake: last success, last error, failures in a row, next due time.

A failing source backs off exponentially (capped) but is always retried when due; it never
silently stops. All sources' health is one object (``_state/health.json``), written once per run,
so an unchanged feed (a 304) still costs no write of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from feedlake.tasks.errors import DamagedObjectError, bug_reason
from feedlake.tasks.lake.source_state import set_aside
from feedlake.tasks.lake.storage import ObjectStore, update_object
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport

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
    """Every source's health record, by source id; DamagedObjectError if the object is unreadable."""
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
        # Health is shown and stored: URLs in it are display forms (placeholder values redacted).
        shown_url = source.display_url
        record = health.get(report.source_id) or SourceHealth(report.source_id, shown_url)
        if record.url != shown_url:
            # The sources file now names another URL: it wins over a redirect we followed before.
            record = replace(record, effective_url=None)
        moved_to = source.redact(report.moved_to) if report.moved_to is not None else None
        if moved_to is not None and moved_to != (record.effective_url or shown_url):
            moved_from = record.effective_url or shown_url
            record = replace(
                record, effective_url=moved_to, previous_urls=(*record.previous_urls, moved_from)
            )
        record = replace(
            record, url=shown_url, last_attempt_at=now.isoformat(), last_status=report.http_status
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
                # Distinct articles: those new to the lake this run (committed or held), not re-fetches.
                items_seen=record.items_seen + report.new + report.rejected,
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

    try:
        update_object(store, HEALTH_KEY, merge, "the health records")
    except DamagedObjectError:
        # Damaged since this run read it: keep its bytes aside and write this run's records alone.
        set_aside(store, HEALTH_KEY)
        update_object(store, HEALTH_KEY, merge, "the health records")


def read_health_bytes(raw: bytes) -> dict[str, SourceHealth]:
    """Parse the health object's body; DamagedObjectError naming it if any record does not fit."""
    try:
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise TypeError("not a JSON object")
        records = {}
        for source_id, fields in document.items():
            fields["previous_urls"] = tuple(fields.get("previous_urls") or ())
            record = SourceHealth(**fields)
            _check_health(record)
            records[source_id] = record
    except (ValueError, TypeError, AttributeError) as exc:
        raise DamagedObjectError(HEALTH_KEY, f"not the health records ({bug_reason(exc)})") from None
    return records


_OPTIONAL_TEXT = (str, type(None))
# The fields the run computes with; fields not named here are taken as they are.
_HEALTH_TYPES: dict[str, tuple[type, ...]] = {
    "source_id": (str,),
    "url": (str,),
    "consecutive_failures": (int,),
    "items_seen": (int,),
    "last_status": (int, type(None)),
    "last_items": (int, type(None)),
    "last_attempt_at": _OPTIONAL_TEXT,
    "last_success_at": _OPTIONAL_TEXT,
    "last_error": _OPTIONAL_TEXT,
    "last_error_kind": _OPTIONAL_TEXT,
    "next_due_at": _OPTIONAL_TEXT,
    "effective_url": _OPTIONAL_TEXT,
    "previous_urls": (tuple,),
}


def _check_health(record: SourceHealth) -> None:
    """Raise TypeError/ValueError for a record whose fields the run could not use."""
    for name, allowed in _HEALTH_TYPES.items():
        value = getattr(record, name, None)
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise TypeError(f"{record.source_id!r}: {name} is {type(value).__name__}")
    for stamp in (record.last_attempt_at, record.last_success_at):
        if stamp is not None:
            datetime.fromisoformat(stamp)
    # split_due compares next_due_at with an aware datetime: a naive one would raise there.
    if record.next_due_at is not None and datetime.fromisoformat(record.next_due_at).tzinfo is None:
        raise ValueError(f"{record.source_id!r}: next_due_at {record.next_due_at!r} has no time zone")


def fetch_targets(sources: Sequence[Source], health: Mapping[str, SourceHealth]) -> list[Source]:
    """The sources to fetch, each at the URL it permanently moved to, if it did."""
    targets = []
    for source in sources:
        record = health.get(source.id)
        if record and record.effective_url and record.url == source.display_url:
            targets.append(replace(source, url=_with_values(record.effective_url, source)))
        else:
            targets.append(source)
    return targets


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
            format_utc(h.last_success_at),
            str(h.consecutive_failures),
            str(h.last_status or "-"),
            str(h.items_seen),
            format_utc(h.next_due_at) if h.next_due_at else "when polled",
            (h.last_error or "")[:70] if h.consecutive_failures else "",
        )
        for h in sorted(health.values(), key=lambda h: (h.state != "failing", h.source_id))
    ]


def parse_utc(stamp: str | None) -> datetime | None:
    """A stored ISO timestamp as an aware datetime (a naive stamp is taken as UTC); None for none."""
    if not stamp:
        return None
    when = datetime.fromisoformat(stamp)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def format_utc(stamp: str | None, empty: str = "-") -> str:
    """An ISO timestamp for people: ``YYYY-MM-DD HH:MM:SSZ`` in UTC (a naive stamp is taken as UTC)."""
    when = parse_utc(stamp)
    return empty if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _with_values(display_url: str, source: Source) -> str:
    # The stored URL shows ${NAME} where a value was; the request needs the value back.
    for name, value in source.substitutions:
        display_url = display_url.replace(f"${{{name}}}", value)
    return display_url
