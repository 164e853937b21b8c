"""A failing source backs off across runs, is reported, and shows in `feedlake sources status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.cli import EXIT_OK, main
from tests.conftest import write_sources

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_failing_source_backs_off_and_is_retried_when_due(
    tmp_path: Path, snapshot_base_url: str, monkeypatch, capsys
) -> None:
    from flows.poll import poll_flow

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
    assert "failing" in gone_line and "404" in gone_line
    assert "2 sources, 1 failing" in table

    # Once due again it is retried (never silently dropped) and its failures keep counting.
    health_path = lake / "_state" / "health.json"
    health = json.loads(health_path.read_text())
    health["gone"]["next_due_at"] = "2000-01-01T00:00:00+00:00"
    health_path.write_text(json.dumps(health))
    third = {r.source_id: r for r in poll_flow(sources=str(sources), lake=str(lake)).reports}
    assert third["gone"].status == "error" and third["gone"].http_status == 404
    assert json.loads(health_path.read_text())["gone"]["consecutive_failures"] == 2
