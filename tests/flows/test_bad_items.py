"""One item that cannot be normalized is held in quarantine; the feed's other items land.

The malformed items found so far (lone surrogates, ``tags: 5``, huge sizes) are now cleaned by the
parse stage, so the failure is injected into normalize's URL step for one item's link: any other
exception at that point must be handled the same way. tests/tasks/normalize/test_articles.py feeds the
normalize stage such items directly.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.conftest import CENTCOM_FIXTURE, write_sources
from tests.support.threaded_http import serve_handler

BAD_LINK = "https://example.com/2"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def json_feed() -> bytes:
    items = [
        {"id": "one", "url": "https://example.com/1", "title": "One", "content_text": "first"},
        {"id": "lone", "url": BAD_LINK, "title": "Two \u00e9", "content_text": "second"},
        {"id": "three", "url": "https://example.com/3", "title": "Three", "content_text": "third"},
    ]
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items}
    return json.dumps(document).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/feed.json":
            body, kind = json_feed(), "application/feed+json"
        else:
            body, kind = CENTCOM_FIXTURE.read_bytes(), "application/rss+xml"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_item_that_cannot_be_normalized_is_held_and_the_rest_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedlake.tasks.normalize.articles
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.lake.layout import new_run_id
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.quarantine import read_quarantine, replay_quarantine
    from feedlake.tasks.validate.validator import ArticleValidator

    canonical_url = feedlake.tasks.normalize.articles.canonical_url

    def refusing(url: str | None, base: str | None = None) -> str | None:
        if url == BAD_LINK:
            raise ValueError("Port out of range 0-65535")
        return canonical_url(url, base)

    monkeypatch.setattr(feedlake.tasks.normalize.articles, "canonical_url", refusing)
    lake = tmp_path / "lake"
    with serve_handler(Handler) as base:
        sources = write_sources(tmp_path / "s.yaml", [("json", f"{base}/feed.json"), ("rss", f"{base}/rss")])
        first = poll_flow(sources=str(sources), lake=str(lake))
        second = poll_flow(sources=str(sources), lake=str(lake))
    reports = {r.source_id: r for r in first.reports}
    assert reports["json"].status == "ok", reports["json"]
    assert (reports["json"].fetched, reports["json"].new, reports["json"].rejected) == (3, 2, 1)
    assert "could not be normalized" in " ".join(reports["json"].warnings)
    assert reports["rss"].new == 3
    store = open_store(str(lake))
    held = read_quarantine(store, "json").to_pylist()
    assert len(held) == 1
    row = held[0]
    assert row["stage"] == "normalize" and row["guid"] == "lone"
    assert row["url"] == BAD_LINK and row["title"] == "Two \u00e9" and row["run_id"] == first.run_id
    assert row["failed_expectations"] == ["normalize: ValueError: Port out of range 0-65535"]
    # The next poll finds the held item in the seen index: it is not held twice.
    again = {r.source_id: r for r in second.reports}
    assert second.rows_quarantined == 0 and again["json"].duplicate == 3
    # A replay leaves it where it is: it holds raw text, not an article.
    result = replay_quarantine(store, new_run_id(), ArticleValidator(), row_group_rows=1024)
    assert result.moved == 0 and read_quarantine(store, "json").num_rows == 1
