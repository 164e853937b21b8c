"""A teaser feed polled end to end: the official releases land whole from their pages.

The real af.mil news feed (ArticleCS, ~300-character teasers) is served over local HTTP with four of
its items' real pages; the fetcher reaches www.af.mil on that server through FEEDLAKE_CONNECT_TO, as
the demo does. The other items' pages answer 404.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest

import feedlake
from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.demo.snapshot_server import serve_snapshots
from feedlake.tasks.lake.raw_capture import iter_raw_captures
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.settings import FeedlakeSettings
from tests.conftest import write_sources
from tests.support.lake_ops import article_keys
from tests.support.paths import CASES

FEED = "corpus/af.mil-mirror_TecnologiaNova/RSS3a26.ashx.xml"
# Read from the pages themselves (tests/cases/pages/af.mil): a sentence of each release's body, and
# the chrome around it that must not reach the lake.
RELEASE_SENTENCES = {
    "Gulf War created need for better critical care": "turning point in Air Force Medical Service",
    "A look back at Desert Storm, 25 years later": "Desert Storm",
}


def read_rows(lake: Path) -> list[dict[str, object]]:
    return (
        ds.dataset(lake / "articles", format="parquet", partitioning="hive", schema=ARTICLE_SCHEMA)
        .to_table()
        .to_pylist()
    )


def test_teaser_items_land_with_the_release_from_their_page(
    af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path
) -> None:
    sources, settings = af_mil
    lake = tmp_path / "lake"
    summary = feedlake.poll(sources, lake, settings)
    assert summary.rows_committed == 20 and summary.sources_failed == 0
    assert (summary.pages_tried, summary.pages_used) == (20, 4)
    rows = {r["title"]: r for r in read_rows(lake)}
    from_pages = {t: r for t, r in rows.items() if r["content_source"] == "page"}
    assert len(from_pages) == 4
    for title, sentence in RELEASE_SENTENCES.items():
        row = from_pages[title]
        text = str(row["content_text"])
        assert sentence in text
        assert "\n\n" in text, "paragraphs are kept, separated by a blank line"
        assert len(text) > 5 * len(str(row["summary_text"])), "the release, not the teaser"
        assert str(row["page_url"]).startswith("http://www.af.mil/News/ArticleDisplay/")
        assert row["page_status"] == "ok" and row["page_fetched_at"] is not None
        for chrome in ("Print", "Share", "Related Links", "Contact Us", "Privacy", "Skip to main content"):
            assert chrome not in text.splitlines()[0:1] + text.splitlines()[-2:], chrome
    # Every other item keeps the feed's teaser and says why.
    others = [r for r in rows.values() if r["content_source"] != "page"]
    assert len(others) == 16
    assert {r["page_status"] for r in others} == {"http_404"}
    assert all(r["content_text"] and len(str(r["content_text"])) < 600 for r in others)
    report = summary.reports[0]
    assert any("16 of 20 pages gave no body (http_404 16)" in w for w in report.warnings)


def test_every_page_response_is_kept_in_the_runs_raw_capture(
    af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path
) -> None:
    sources, settings = af_mil
    lake = tmp_path / "lake"
    summary = feedlake.poll(sources, lake, settings)
    captured = list(iter_raw_captures(open_store(str(lake)), kind="page"))
    assert {run for run, _ in captured} == {summary.run_id}
    assert len(captured) == 20
    bodies = {e.url: e for _, e in captured}
    ok = [e for e in bodies.values() if e.status == 200]
    assert len(ok) == 4 and all(b"<html" in e.body.lower() for e in ok)


def test_a_second_poll_fetches_no_page_again(af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path) -> None:
    sources, settings = af_mil
    lake = tmp_path / "lake"
    feedlake.poll(sources, lake, settings)
    again = feedlake.poll(sources, lake, settings)
    # The feed answers 304: nothing is new, so no page is fetched and nothing is written.
    assert (again.rows_committed, again.pages_tried) == (0, 0)
    assert len(article_keys(open_store(str(lake)))) == 20


def test_full_text_never_fetches_no_page(tmp_path: Path) -> None:
    with serve_snapshots(CASES) as base_url:
        sources = write_sources(tmp_path / "s.yaml", [("af-mil-news", f"{base_url}/{FEED}")], "never")
        summary = feedlake.poll(sources, tmp_path / "lake", FeedlakeSettings(allow_private_networks=True))
    assert summary.pages_tried == 0
    rows = read_rows(tmp_path / "lake")
    assert {(r["content_source"], r["page_status"]) for r in rows} == {("feed", "skipped")}


def test_a_crash_at_any_write_never_duplicates_rows_or_keeps_a_dead_runs_capture(
    af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path
) -> None:
    from feedlake.tasks.pipeline.poll import run_poll
    from tests.support.crash_store import CrashingStore, Killed

    sources, settings = af_mil
    settings = settings.model_copy(update={"sources": str(sources), "lease_wait_seconds": 0})
    counting = CrashingStore(open_store(str(tmp_path / "clean")))
    run_poll(settings, store=counting)
    writes = counting.writes
    assert writes > 5
    for crash_at in range(0, writes, max(1, writes // 8)):
        lake = tmp_path / f"lake-{crash_at}"
        with pytest.raises(Killed):
            run_poll(settings, store=CrashingStore(open_store(str(lake)), crash_at=crash_at))
        # The dead run's lease is still there (its process is this one, alive): expire it, as time would.
        store = open_store(str(lake))
        store.delete("_lease.json")
        rerun = run_poll(settings, store=store)
        keys = article_keys(store)
        assert len(keys) == len(set(keys)) == 20, crash_at
        # One capture, of the run whose rows the lake holds (the dead run's, if it got past its commit
        # point and was rolled forward; else the rerun's): never one of a run rolled back.
        captured = list(iter_raw_captures(store, kind="page"))
        rows = read_rows(lake)
        assert {run for run, _ in captured} == {r["run_id"] for r in rows}, crash_at
        assert len(captured) == 20, crash_at
        assert sum(r["content_source"] == "page" for r in rows) == 4, crash_at
        assert rerun.rows_committed in (0, 20), crash_at


def test_a_source_that_fails_after_the_fetch_keeps_the_retry_list_it_had() -> None:
    import pyarrow as pa

    from feedlake.tasks.lake.page_retries import RETRIES, RETRY_SCHEMA
    from feedlake.tasks.pipeline.full_text import FetchedSources, settled_retries
    from tests.support.article_rows import make_rows

    def waiting(source_id: str, count: int, run_id: str) -> pa.Table:
        rows = make_rows(source_id, count, run_id=run_id)
        return rows.append_column(RETRIES, pa.array([0] * count, pa.int32())).cast(RETRY_SCHEMA)

    before = pa.concat_tables([waiting("ok", 2, "before"), waiting("broke", 1, "before")])
    after = pa.concat_tables([waiting("ok", 1, "after"), waiting("broke", 3, "after")])
    fetched = FetchedSources([], [], [], retries=after, retries_before=before)
    settled = settled_retries(fetched, {"broke"})
    assert settled is not None
    pairs = sorted(
        zip(settled.column("source_id").to_pylist(), settled.column("run_id").to_pylist(), strict=True)
    )
    assert pairs == [("broke", "before"), ("ok", "after")]
    assert settled_retries(fetched, set()) is after
    assert settled_retries(FetchedSources([], []), {"broke"}) is None
