"""Source health: failures back off exponentially (capped), success resets, records merge safely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedlake.tasks.health.records import (
    SourceHealth,
    backoff_seconds,
    fetch_targets,
    read_health,
    split_due,
    updated_health,
    write_health,
)
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.pipeline.stages import mark_backing_off, start_reports
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport

NOW = datetime(2026, 1, 1, tzinfo=UTC)
A = Source(id="a", url="http://a.example/feed", name="a", publisher="p", kind="news")
B = Source(id="b", url="http://b.example/feed", name="b", publisher="p", kind="news")


def report(source_id: str, status: str, fetched: int = 0, error: str | None = None) -> SourceReport:
    return SourceReport(
        source_id,
        status=status,
        http_status=200 if status == "ok" else 503,
        fetched=fetched,
        new=fetched,  # every fetched item new to the lake: items_seen counts distinct articles
        error=error,
        error_kind="fetch_transient" if error else None,
    )


def run(sources, previous, reports, now):
    return updated_health(previous, sources, reports, now, 300, 3600)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 300, 3600) for n in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]


def test_failures_count_up_and_success_resets() -> None:
    first = updated_health(
        {}, [A, B], [report("a", "error", error="boom"), report("b", "ok", 5)], NOW, 300, 3600
    )
    assert first["a"].consecutive_failures == 1 and first["a"].state == "failing"
    assert first["a"].next_due_at == (NOW + timedelta(seconds=300)).isoformat()
    assert first["b"].items_seen == 5 and first["b"].last_success_at == NOW.isoformat()
    later = NOW + timedelta(hours=1)
    second = updated_health(
        first, [A, B], [report("a", "error", error="boom"), report("b", "ok", 2)], later, 300, 3600
    )
    assert second["a"].consecutive_failures == 2
    assert second["a"].next_due_at == (later + timedelta(seconds=600)).isoformat()
    assert second["b"].items_seen == 7
    healed = updated_health(second, [A], [report("a", "ok", 1)], later, 300, 3600)
    assert healed["a"].consecutive_failures == 0 and healed["a"].next_due_at is None
    assert healed["a"].last_error == "boom", "the last error stays on record"


def test_backing_off_sources_are_skipped_and_reported() -> None:
    health = updated_health(
        {}, [A, B], [report("a", "error", error="boom"), report("b", "ok")], NOW, 300, 3600
    )
    due, waiting = split_due([A, B], health, NOW + timedelta(seconds=10))
    assert [s.id for s in due] == ["b"] and [s.id for s in waiting] == ["a"]
    assert [s.id for s in split_due([A, B], health, NOW + timedelta(seconds=301))[0]] == ["a", "b"]
    reports = start_reports([A, B])
    mark_backing_off(reports, waiting, health)
    assert reports["a"].status == "backing_off" and "1 failures in a row" in (reports["a"].error or "")
    # A backing-off source's record is left as it was by the run that skipped it.
    assert updated_health(health, [A], reports.values(), NOW, 300, 3600)["a"] == health["a"]


def test_write_merges_with_records_written_meanwhile(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    write_health(store, {"a": SourceHealth("a", A.url, consecutive_failures=2)})
    write_health(store, {"b": SourceHealth("b", B.url, items_seen=3)})
    stored = read_health(store)
    assert stored["a"].consecutive_failures == 2 and stored["b"].items_seen == 3


def test_permanent_move_is_remembered_until_the_sources_file_changes() -> None:
    moved = SourceReport("a", status="ok", http_status=200, moved_to="https://a.example/new-feed")
    health = run([A], {}, [moved], NOW)
    assert health["a"].effective_url == "https://a.example/new-feed"
    assert health["a"].previous_urls == (A.url,)
    assert [s.url for s in fetch_targets([A], health)] == ["https://a.example/new-feed"]
    edited = Source(id="a", url="https://a.example/chosen", name="a", publisher="p", kind="news")
    assert [s.url for s in fetch_targets([edited], health)] == [edited.url]
    again = run([edited], health, [SourceReport("a", status="ok", http_status=200)], NOW)
    assert again["a"].effective_url is None and again["a"].url == edited.url


def test_last_items_is_what_the_last_parsed_feed_held() -> None:
    # It feeds the went-empty check: only a parsed feed says how many items it holds.
    parsed = run([A], {}, [report("a", "ok", 12)], NOW)
    assert parsed["a"].last_items == 12
    unchanged = run([A], parsed, [report("a", "not_modified")], NOW + timedelta(hours=1))
    assert unchanged["a"].last_items == 12
    failed = run([A], unchanged, [report("a", "error", error="boom")], NOW + timedelta(hours=2))
    assert failed["a"].last_items == 12
    emptied = run([A], failed, [report("a", "ok", 0)], NOW + timedelta(hours=3))
    assert emptied["a"].last_items == 0
