"""The operator's status view: stale sources flagged with the reason, distinct items, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedlake.tasks.health.records import SourceHealth, format_utc, updated_health
from feedlake.tasks.health.status import source_status, status_rows
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def record(**fields: object) -> SourceHealth:
    return SourceHealth("a", "https://example.org/feed", **fields)  # type: ignore[arg-type]


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


def test_a_source_polled_within_its_intervals_is_ok() -> None:
    status = source_status(record(last_attempt_at=ago(40), last_success_at=ago(40)), NOW, 30, 3)
    assert (status.state, status.why) == ("ok", "")


def test_no_poll_for_several_intervals_is_stale_and_blames_the_scheduler() -> None:
    status = source_status(record(last_attempt_at=ago(300), last_success_at=ago(300)), NOW, 30, 3)
    assert status.state == "stale"
    assert "no poll since 2026-11-28 11:55:00Z" in status.why and "feedlake serve" in status.why


def test_polled_but_no_success_for_long_is_stale_with_the_last_success() -> None:
    status = source_status(
        record(last_attempt_at=ago(10), last_success_at=ago(3600), consecutive_failures=0), NOW, 30, 3
    )
    assert status.state == "stale" and "no success since 2026-11-28 11:00:00Z" in status.why


def test_backing_off_is_not_stale_and_says_when_it_is_tried_next() -> None:
    backing = record(
        last_attempt_at=ago(4000),
        consecutive_failures=4,
        last_error="HTTP 503",
        next_due_at=(NOW + timedelta(seconds=600)).isoformat(),
    )
    status = source_status(backing, NOW, 30, 3)
    assert status.state == "backing_off"
    assert "next try 2026-11-28 12:10:00Z" in status.why and "HTTP 503" in status.why


def test_rows_put_sources_needing_attention_first_and_count_states() -> None:
    health = {
        "fine": SourceHealth("fine", "u", last_attempt_at=ago(5), last_success_at=ago(5), items_seen=4),
        "quiet": SourceHealth("quiet", "u", last_attempt_at=ago(4000), last_success_at=ago(4000)),
        "never": SourceHealth("never", "u"),
    }
    rows, counts = status_rows(health, NOW, {"quiet": 60}, 900, 3)
    assert [row[:2] for row in rows] == [("quiet", "stale"), ("never", "new"), ("fine", "ok")]
    assert counts == {"stale": 1, "new": 1, "ok": 1}
    assert rows[2][2] == "2026-11-28 11:59:55Z" and rows[2][6] == "4"


def test_times_always_carry_their_zone() -> None:
    assert format_utc("2026-11-28T07:00:00-05:00") == "2026-11-28 12:00:00Z"
    assert format_utc("2026-11-28T12:00:00") == "2026-11-28 12:00:00Z"
    assert format_utc(None) == "-"


def test_items_seen_counts_distinct_articles_not_refetches() -> None:
    source = Source(id="a", url="https://example.org/feed", name="A", publisher="p", kind="news")
    first = SourceReport("a", status="ok", http_status=200, fetched=24, new=24)
    again = SourceReport("a", status="ok", http_status=200, fetched=24, new=1, duplicate=23)
    held = SourceReport("a", status="ok", http_status=200, fetched=24, new=0, rejected=2, duplicate=22)
    health = updated_health({}, [source], [first], NOW, 300, 3600)
    for report in (again, held):
        health = updated_health(health, [source], [report], NOW, 300, 3600)
    assert health["a"].items_seen == 27
