"""A failing source backs off across runs, is reported, and shows in `feedlake sources status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedlake.flows.cli import EXIT_OK, main
from tests.conftest import write_sources

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_failing_source_backs_off_and_is_retried_when_due(
    tmp_path: Path, snapshot_base_url: str, monkeypatch, capsys
) -> None:
    from feedlake.flows.poll import poll_flow

    monkeypatch.setenv("FEEDLAKE_FAILURE_BACKOFF_SECONDS", "3600")
    sources = write_sources(
        tmp_path / "s.yaml",
        [
            ("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml"),
            ("gone", f"{snapshot_base_url}/corpus/no-such-feed.xml"),
        ],
    )
    lake = tmp_path / "lake"
    first = {r.source_id: r for r in poll_flow(sources=str(sources), lake=str(lake)).reports}
    assert first["gone"].status == "error" and first["centcom"].status == "ok"
    second = {r.source_id: r for r in poll_flow(sources=str(sources), lake=str(lake)).reports}
    assert second["gone"].status == "backing_off" and second["gone"].http_status is None
    assert "1 failures in a row" in (second["gone"].error or "")
    assert second["centcom"].status == "not_modified"

    capsys.readouterr()
    assert main(["sources", "status", "--lake", str(lake)]) == EXIT_OK
    table = capsys.readouterr().out
    gone_line = next(line for line in table.splitlines() if line.startswith("gone"))
    # Failing and waiting out its backoff: the state says so, with the next try and the last error.
    assert "backing_off" in gone_line and "404" in gone_line and "next try" in gone_line
    assert "2 sources: 1 backing_off, 1 ok (times in UTC)" in table

    # Once due again it is retried (never silently dropped) and its failures keep counting.
    health_path = lake / "_state" / "health.json"
    health = json.loads(health_path.read_text())
    health["gone"]["next_due_at"] = "2000-01-01T00:00:00+00:00"
    health_path.write_text(json.dumps(health))
    third = {r.source_id: r for r in poll_flow(sources=str(sources), lake=str(lake)).reports}
    assert third["gone"].status == "error" and third["gone"].http_status == 404
    assert json.loads(health_path.read_text())["gone"]["consecutive_failures"] == 2


def test_permanent_redirect_moves_the_source_and_is_reported(tmp_path: Path) -> None:
    from feedlake.flows.poll import poll_flow
    from tests.support.hostile_server import HostileHandler, hostile_server

    with hostile_server() as base:
        sources = write_sources(tmp_path / "s.yaml", [("moved", f"{base}/old-feed")])
        lake = tmp_path / "lake"
        first = poll_flow(sources=str(sources), lake=str(lake)).reports[0]
        hits_before = HostileHandler.hits.get("/old-feed", 0)
        second = poll_flow(sources=str(sources), lake=str(lake)).reports[0]
    assert first.status == "ok" and first.new == 3 and first.moved_to == f"{base}/good"
    assert any("moved permanently" in w for w in first.warnings)
    record = json.loads((lake / "_state" / "health.json").read_text())["moved"]
    assert record["effective_url"] == f"{base}/good" and record["previous_urls"] == [f"{base}/old-feed"]
    assert second.status == "ok" and second.new == 0 and second.duplicate == 3
    assert HostileHandler.hits.get("/old-feed", 0) == hits_before, "the old URL is not asked again"
