"""Data quality end to end: a real poll with broken feeds, the lake's records, replay, the HTML page.

Feeds are real corpus files served over local HTTP; two are deliberately broken copies of the UN
News feed: one with three items dated 1985 (rejected rows), one with every item dated 1985 (the
whole batch fails). A real Prefect API runs the flows; headless Chromium reads the report.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from feedlake.flows.cli import EXIT_OK, main
from feedlake.tasks.lake.delta_table import RUN_ID_KEY, commit_history, live_files, reports_of
from feedlake.tasks.lake.layout import raw_capture_key
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from tests.conftest import CASES, write_sources
from tests.support.browser import figures, rendered_dom

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

UN_NEWS = CASES / "corpus" / "FeedVerse" / "un-news-europe.rss.xml"
OLD_DATE = "<pubDate>Tue, 01 Jan 1985 09:00:00 +0000</pubDate>"


def dated_1985(text: str, count: int | None) -> str:
    """The feed with its first ``count`` (or every) publication date moved to 1985."""
    return re.sub(r"<pubDate>[^<]*</pubDate>", OLD_DATE, text, count=count or 0)


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory):
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    root = tmp_path_factory.mktemp("quality")
    feeds = root / "feeds"
    feeds.mkdir()
    shutil.copy(CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml", feeds / "centcom.xml")
    shutil.copy(CASES / "corpus" / "miniflux-v2" / "rdf_UTF8.xml", feeds / "nodates.xml")
    text = UN_NEWS.read_text(encoding="utf-8")
    (feeds / "un-some-old.xml").write_text(dated_1985(text, 3), encoding="utf-8")
    (feeds / "un-all-old.xml").write_text(dated_1985(text, None), encoding="utf-8")
    with serve_snapshots(feeds) as base:
        names = ("centcom", "nodates", "un-some-old", "un-all-old")
        sources = write_sources(root / "sources.yaml", [(n, f"{base}/{n}.xml") for n in names])
        lake = root / "lake"
        summary = poll_flow(sources=str(sources), lake=str(lake))
        yield root, lake, summary, sources


def articles_per_source(lake: Path, table: str = "articles") -> dict[str, int]:
    data = ds.dataset(lake / table, format="parquet", partitioning="hive").to_table()
    counts: dict[str, int] = {}
    for source_id in data.column("source_id").to_pylist():
        counts[str(source_id)] = counts.get(str(source_id), 0) + 1
    return counts


def test_each_severity_does_its_job_in_a_real_poll(polled) -> None:
    _, lake, summary, _ = polled
    reports = {r.source_id: r for r in summary.reports}
    assert (reports["un-some-old"].new, reports["un-some-old"].rejected) == (27, 3)
    assert reports["un-all-old"].status == "error" and reports["un-all-old"].error_kind == "quality"
    assert "rejected_share" in (reports["un-all-old"].error or "")
    assert any("publication date" in w for w in reports["nodates"].warnings)
    assert reports["centcom"].status == "ok" and reports["centcom"].rejected == 0
    assert articles_per_source(lake) == {"centcom": 3, "nodates": 60, "un-some-old": 27}
    assert articles_per_source(lake, "_quarantine") == {"un-some-old": 3, "un-all-old": 30}
    assert summary.rows_quarantined == 33 and summary.quality_report


def test_validation_results_are_committed_with_the_run(polled) -> None:
    _, lake, summary, _ = polled
    store = open_store(str(lake))
    commit = commit_history(store, "articles", 1)[0]
    assert commit[RUN_ID_KEY] == summary.run_id
    # The validation results, and the raw capture of the feed documents the run fetched.
    assert sorted(reports_of(commit)) == [
        raw_capture_key(summary.run_id),
        f"_validation/{summary.run_id}.html",
        f"_validation/{summary.run_id}.json",
    ]
    document = json.loads(store.get(f"_validation/{summary.run_id}.json") or b"{}")
    by_source = {s["source_id"]: s for s in document["sources"]}
    assert by_source["un-all-old"]["failed"] == ["batch:expect_column_values_to_be_between(rejected_share)"]
    on_disk = articles_per_source(lake)
    for source_id, counts in by_source.items():
        assert counts["passed"] == on_disk.get(source_id, 0), source_id
    assert 0 < document["validate_seconds"] <= summary.validate_seconds < summary.run_seconds


def test_the_validation_results_table_has_the_run_s_counts_per_source(polled) -> None:
    """Any Delta reader charts quality over time: one row per source and run, as the JSON says."""
    from deltalake import DeltaTable

    _, lake, summary, _ = polled
    document = json.loads(open_store(str(lake)).get(f"_validation/{summary.run_id}.json") or b"{}")
    table = DeltaTable(str(lake / "_validation_results")).to_pyarrow_table()
    rows = {r["source_id"]: r for r in table.to_pylist() if r["run_id"] == summary.run_id}
    assert set(rows) == {s["source_id"] for s in document["sources"]}
    for source in document["sources"]:
        row = rows[source["source_id"]]
        counts = ("checked", "passed", "warned", "rejected", "failed", "flags")
        assert {k: row[k] for k in counts} == {k: source[k] for k in counts}, source["source_id"]
        assert row["kind"] == "poll" and row["suite"] == document["suite"]
        assert row["validated_month"] == document["validated_at"][:7]


def test_the_data_quality_artifact_has_a_row_per_source(polled) -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL

    # Asked over plain HTTP: prefect 3.8's client sends nulls for unset paging fields, which this
    # server's request models refuse (422).
    body = {
        "artifacts": {"key": {"any_": ["feedlake-data-quality"]}},
        "limit": 50,
        "offset": 0,
        "sort": "CREATED_DESC",
    }
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    texts = [str(a["data"]) for a in response.json()]
    assert any("| un-some-old | 30 | 27 | 0 | 3 | ok |" in t for t in texts), texts
    assert any("| un-all-old | 30 | 0 | 0 | 30 | failed |" in t for t in texts)


def test_quarantine_list_then_replay_after_a_fix_moves_rows_exactly_once(polled, capsys) -> None:
    root, lake, _, sources = polled
    capsys.readouterr()
    assert main(["quarantine", "list", "--lake", str(lake), "--limit", "5"]) == EXIT_OK
    listing = capsys.readouterr().out
    assert "33 rows held in quarantine from 2 sources (showing 5)" in listing
    assert "expect_column_values_to_be_between(published_at)" in listing

    suite = json.loads(DEFAULT_SUITE.read_text())
    for item in suite["row_expectations"]:
        if item["kwargs"].get("column") == "published_at":
            item["kwargs"]["min_value"] = "1980-01-01T00:00:00+00:00"
    relaxed = root / "relaxed.json"
    relaxed.write_text(json.dumps(suite))
    assert main(["quarantine", "replay", "--lake", str(lake), "--suite", str(relaxed)]) == EXIT_OK
    assert "33 held rows checked, 33 moved to articles/, 0 still held" in capsys.readouterr().out
    assert main(["quarantine", "replay", "--lake", str(lake), "--suite", str(relaxed)]) == EXIT_OK
    assert "0 held rows checked, 0 moved" in capsys.readouterr().out
    assert articles_per_source(lake) == {"centcom": 3, "nodates": 60, "un-some-old": 30, "un-all-old": 30}
    assert live_files(open_store(str(lake)), "_quarantine") == []
    # A poll after the replay adds nothing twice: every feed is unchanged or already seen.
    assert main(["poll", "--sources", str(sources), "--lake", str(lake)]) == EXIT_OK
    assert sum(articles_per_source(lake).values()) == 123


def test_html_report_renders_in_chromium_with_the_lakes_numbers(polled, tmp_path: Path, capsys) -> None:
    _, lake, summary, _ = polled
    out = tmp_path / "report.html"
    assert main(["quality", "report", "--lake", str(lake), "--out", str(out)]) == EXIT_OK
    shot = tmp_path / "report.png"
    dom = rendered_dom(out, screenshot=shot)
    assert shot.stat().st_size > 10_000
    shown = figures(dom)
    run = summary.run_id
    for source_id, checked in {"centcom": 3, "nodates": 60, "un-some-old": 30, "un-all-old": 30}.items():
        assert shown.found[(run, source_id, "", "checked")] == str(checked)
    assert shown.found[(run, "un-some-old", "", "rejected")] == "3"
    assert shown.found[(run, "un-all-old", "", "status")] == "failed"
    assert shown.found[(run, "nodates", "", "status")] == "flagged"
    assert shown.found[(run, "", "", "checked")] == "123"
    assert shown.found[(run, "", "expect_column_values_to_be_between(published_at)", "unexpected")] == "33"
    # The replay is a run of its own on the same page, and it moved all 33 rows.
    replays = [key for key in shown.found if key[0] != run and key[3] == "passed" and not key[1]]
    assert [shown.found[key] for key in replays][:1] == ["33"]
    assert "feedlake data quality" in " ".join(shown.text)


def test_a_feed_that_empties_is_flagged_on_the_next_poll(tmp_path: Path) -> None:
    from feedlake.flows.poll import poll_flow
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    feeds = tmp_path / "feeds"
    feeds.mkdir()
    feed = feeds / "centcom.xml"
    shutil.copy(CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml", feed)
    with serve_snapshots(feeds) as base:
        sources = write_sources(tmp_path / "s.yaml", [("centcom", f"{base}/centcom.xml")])
        lake = tmp_path / "lake"
        first = poll_flow(sources=str(sources), lake=str(lake))
        assert first.reports[0].warnings == []
        # The publisher's feed now parses fine but holds no items (a broken CMS export, say).
        empty = re.sub(r"<item>.*</item>", "", feed.read_text(encoding="utf-8"), flags=re.S)
        feed.write_text(empty, encoding="utf-8")
        second = poll_flow(sources=str(sources), lake=str(lake))
    report = second.reports[0]
    assert report.status == "ok" and report.fetched == 0
    assert any("went_empty=True" in w for w in report.warnings), report.warnings
    document = json.loads((lake / "_validation" / f"{second.run_id}.json").read_text())
    assert document["totals"]["sources_flagged"] == 1 and document["totals"]["checked"] == 0
