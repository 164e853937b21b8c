"""pipeline.full_text.fetch_sources: a live poll's feeds and pages overlap, and every feed is captured.

Real servers on loopback. A slow feed holds its answer until the page of another source's new item
has been requested: a run that fetched pages only after the last feed would never end that way
(the slow feed would time out), so its rows landing proves the overlap.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.dataset as ds
import pytest

import feedlake
from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.lake.raw_capture import iter_raw_captures
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.settings import FeedlakeSettings
from tests.conftest import write_sources
from tests.support.threaded_http import QuietHandler, serve_handler

TEASER = "The secretary announced new measures on Tuesday."
ARTICLE = (
    "<p>" + " ".join(["The secretary announced new measures on Tuesday in a long statement."] * 30) + "</p>"
)


def rss(base: str, name: str, query: str = "") -> bytes:
    """One item whose description is a teaser; its link is a page on the same server."""
    self_link = html.escape(f"{base}/{name}.xml{query}")  # XML: an & in the query is &amp;
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>{self_link}</link><description>d</description>"
        f"<item><title>Statement {name}</title><link>{base}/page/{name}</link>"
        f"<guid>{name}-1</guid><description>{TEASER}</description>"
        "<pubDate>Tue, 10 Nov 2026 10:00:00 GMT</pubDate></item>"
        "</channel></rss>"
    ).encode()


class Site(QuietHandler):
    """Feeds and article pages; the slow feed waits (up to 20 s) until the fast feed's page is asked for."""

    page_asked = threading.Event()
    log: list[tuple[float, str]] = []
    down: set[str] = set()  # pages that answer 503 for now

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlsplit(self.path)
        base = f"http://{self.headers['Host']}"
        Site.log.append((time.monotonic(), path.path))
        if path.path == "/robots.txt":
            self.send_body(404, b"", {"Content-Type": "text/plain"})
        elif path.path == "/page/gone":
            self.send_body(404, b"gone", {"Content-Type": "text/plain"})
        elif path.path in Site.down:
            self.send_body(503, b"busy", {"Content-Type": "text/plain"})
        elif path.path.startswith("/page/"):
            Site.page_asked.set()
            page = f"<html><head><title>x</title></head><body><article>{ARTICLE}</article></body></html>"
            self.send_body(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
        elif path.path == "/slow.xml":
            Site.page_asked.wait(20)
            self.send_body(200, rss(base, "slow"))
        else:
            name = path.path.strip("/").removesuffix(".xml")
            query = f"?{path.query}" if path.query else ""
            self.send_body(200, rss(base, name, query))


@pytest.fixture
def site() -> str:
    Site.page_asked.clear()
    Site.log.clear()
    Site.down.clear()
    with serve_handler(Site) as base:
        yield base


def settings(**overrides: object) -> FeedlakeSettings:
    return FeedlakeSettings(
        allow_private_networks=True,
        per_host_min_gap_seconds=0,
        extract_processes=1,
        total_timeout=10,
        fetch_attempts=1,
        **overrides,
    )


def test_a_sources_pages_are_fetched_while_other_feeds_are_still_on_the_wire(
    site: str, tmp_path: Path
) -> None:
    sources = write_sources(
        tmp_path / "s.yaml", [("fast", f"{site}/fast.xml"), ("slow", f"{site}/slow.xml")], "always"
    )
    summary = feedlake.poll(sources, tmp_path / "lake", settings())
    assert summary.sources_failed == 0 and summary.rows_committed == 2
    asked = [path for _, path in Site.log]
    assert asked.index("/page/fast") < asked.index("/page/slow")
    assert summary.pages_used == 2


def test_every_feed_document_is_in_the_runs_raw_capture_with_its_exchange(site: str, tmp_path: Path) -> None:
    sources = write_sources(
        tmp_path / "s.yaml", [("fast", f"{site}/fast.xml"), ("other", f"{site}/other.xml")], "never"
    )
    summary = feedlake.poll(sources, tmp_path / "lake", settings())
    feeds = {e.source_id: e for _, e in iter_raw_captures(open_store(str(tmp_path / "lake")), kind="feed")}
    assert set(feeds) == {"fast", "other"}
    fast = feeds["fast"]
    assert fast.url == f"{site}/fast.xml" and fast.status == 200
    assert fast.body == rss(site, "fast")
    assert fast.response_headers["content-type"] == "application/xml"
    assert "feedlake" in fast.request_headers["user-agent"].lower()
    # A second poll of unchanged feeds captures what was answered again (these servers send no validators).
    again = feedlake.poll(sources, tmp_path / "lake", settings())
    runs = {run for run, _ in iter_raw_captures(open_store(str(tmp_path / "lake")), kind="feed")}
    assert runs == {summary.run_id, again.run_id}


@pytest.mark.parametrize("token", ["tok-3f9a1c77e2", "tok/3f9&a1c77e2"])
def test_a_token_in_a_feeds_url_never_reaches_the_capture(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("FEEDLAKE_VAR_FEED_TOKEN", token)
    url = f"{site}/fast.xml?key=${{FEEDLAKE_VAR_FEED_TOKEN}}"
    sources = write_sources(tmp_path / "s.yaml", [("fast", url)], "never")
    feedlake.poll(sources, tmp_path / "lake", settings())
    [(_, feed)] = list(iter_raw_captures(open_store(str(tmp_path / "lake")), kind="feed"))
    assert feed.url == f"{site}/fast.xml?key=${{FEEDLAKE_VAR_FEED_TOKEN}}"
    assert b"${FEEDLAKE_VAR_FEED_TOKEN}" in feed.body, "the feed quoted its own URL"
    # As written, and as the feed's XML escapes it (&amp;).
    for form in {token, html.escape(token)}:
        assert form.encode() not in feed.body, form
    raw = b"".join(p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file())
    assert token.encode() not in raw


def latest(lake: Path) -> dict[str, dict[str, object]]:
    """article_id -> the latest version of each article (by captured_at, fetched_at, run_id)."""
    rows = ds.dataset(lake / "articles", partitioning="hive", schema=ARTICLE_SCHEMA).to_table().to_pylist()
    found: dict[str, dict[str, object]] = {}
    for row in sorted(rows, key=lambda r: (r["captured_at"], r["fetched_at"], r["run_id"])):
        found[str(row["article_id"])] = row
    return found


def page_requests(name: str) -> int:
    return sum(1 for _, path in Site.log if path == f"/page/{name}")


def test_a_page_that_failed_is_fetched_again_on_the_next_poll_and_lands_as_a_new_version(
    site: str, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path / "s.yaml", [("flaky", f"{site}/flaky.xml")], "always")
    lake = tmp_path / "lake"
    Site.down.add("/page/flaky")
    first = feedlake.poll(sources, lake, settings())
    [row] = latest(lake).values()
    assert (row["content_source"], row["page_status"], row["run_id"]) == ("feed", "http_503", first.run_id)
    Site.down.clear()
    second = feedlake.poll(sources, lake, settings())
    assert second.rows_committed == 1 and page_requests("flaky") == 2
    [row] = latest(lake).values()
    assert (row["content_source"], row["page_status"], row["run_id"]) == ("page", "ok", second.run_id)
    assert "in a long statement" in str(row["content_text"]) and row["summary_text"] == TEASER
    third = feedlake.poll(sources, lake, settings())
    assert (third.rows_committed, page_requests("flaky")) == (0, 2), "a page that gave its body is done"
    assert len(ds.dataset(lake / "articles", partitioning="hive").to_table()) == 2


def test_a_page_is_retried_on_at_most_page_attempts_later_polls(site: str, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "s.yaml", [("flaky", f"{site}/flaky.xml")], "always")
    lake = tmp_path / "lake"
    Site.down.add("/page/flaky")
    for _ in range(5):
        feedlake.poll(sources, lake, settings(page_attempts=2))
    assert page_requests("flaky") == 1 + 2
    [row] = latest(lake).values()
    assert (row["content_source"], row["page_status"]) == ("feed", "http_503")
    # Only the latest committed retry list counts: the older ones are pruned.
    assert len(list((lake / "_pages").iterdir())) == 1


def test_a_page_that_is_gone_is_never_retried(site: str, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "s.yaml", [("gone", f"{site}/gone.xml")], "always")
    Site.down.clear()
    for _ in range(3):
        feedlake.poll(sources, tmp_path / "lake", settings())
    assert page_requests("gone") == 1


def test_a_crash_at_any_write_of_a_retrying_poll_leaves_exactly_one_new_version(
    site: str, tmp_path: Path
) -> None:
    import shutil

    from feedlake.tasks.pipeline.poll import run_poll
    from tests.support.crash_store import CrashingStore, Killed

    sources = write_sources(tmp_path / "s.yaml", [("flaky", f"{site}/flaky.xml")], "always")
    polling = settings(sources=str(sources), lease_wait_seconds=0)
    template = tmp_path / "after-first-poll"
    Site.down.add("/page/flaky")
    run_poll(polling.model_copy(update={"lake": str(template)}))
    Site.down.clear()
    counting = CrashingStore(open_store(str(tmp_path / "count")))
    shutil.copytree(template, tmp_path / "count")
    run_poll(polling.model_copy(update={"lake": str(tmp_path / "count")}), store=counting)
    assert counting.writes > 3
    for crash_at in range(counting.writes):
        lake = tmp_path / f"lake-{crash_at}"
        shutil.copytree(template, lake)
        with pytest.raises(Killed):
            run_poll(polling, store=CrashingStore(open_store(str(lake)), crash_at=crash_at))
        store = open_store(str(lake))
        store.delete("_lease.json")  # the dead run's lease, as its expiry would
        run_poll(polling, store=store)
        run_poll(polling, store=store)
        rows = (
            ds.dataset(lake / "articles", partitioning="hive", schema=ARTICLE_SCHEMA).to_table().to_pylist()
        )
        assert sorted(str(r["content_source"]) for r in rows) == ["feed", "page"], crash_at
        [row] = latest(lake).values()
        assert row["content_source"] == "page", crash_at


def test_a_source_whose_feed_fails_keeps_its_retries_for_a_later_poll(site: str, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "s.yaml", [("flaky", f"{site}/flaky.xml")], "always")
    lake = tmp_path / "lake"
    polling = settings(failure_backoff_seconds=0)
    Site.down.add("/page/flaky")
    feedlake.poll(sources, lake, polling)
    Site.down.clear()
    Site.down.add("/flaky.xml")
    failing = feedlake.poll(sources, lake, polling)
    assert failing.sources_failed == 1
    assert page_requests("flaky") == 1, "no retry for a source that is not in the run"
    Site.down.clear()
    feedlake.poll(sources, lake, polling)
    assert page_requests("flaky") == 2
    [row] = latest(lake).values()
    assert (row["content_source"], row["page_status"]) == ("page", "ok")
