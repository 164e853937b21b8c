"""Validation results as JSON, markdown and HTML: the numbers match the outcome, feed text is inert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from feedlake.tasks.lake.layout import validation_key
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.quality.charts import document_time, read_documents, read_history
from feedlake.tasks.quality.report import (
    has_findings,
    quality_markdown,
    quality_objects,
    render_quality_html,
    validation_document,
)
from feedlake.tasks.validate.validator import ArticleValidator, FeedFacts, ValidationOutcome
from tests.support.article_rows import corpus_rows, make_rows, replace_column
from tests.support.browser import figures, rendered_dom

NO_DATES = "corpus/miniflux-v2/rdf_UTF8.xml"


@pytest.fixture(scope="module")
def outcome() -> ValidationOutcome:
    rows = make_rows("hostile", 6)
    titles = ["<script>alert(1)</script>", "ok", "x" * 1001, "ok", "ok", "ok"]
    rows = replace_column(
        replace_column(rows, "title", titles),
        "url",
        ["javascript:<script>alert(1)</script>", *rows.column("url").to_pylist()[1:]],
    )
    rows = pa.concat_tables([rows, corpus_rows(NO_DATES, "nodates")])
    return ArticleValidator().validate(rows, {"nodates": FeedFacts(60, 60), "hostile": FeedFacts(6, 6)})


@pytest.fixture(scope="module")
def document(outcome: ValidationOutcome) -> dict:
    return validation_document(outcome, "20261123T101010Z-abcd", "poll")


def test_document_counts_add_up(document: dict) -> None:
    by_source = {s["source_id"]: s for s in document["sources"]}
    assert by_source["hostile"]["checked"] == 6 and by_source["hostile"]["rejected"] == 2
    assert by_source["nodates"]["passed"] == 60 and by_source["nodates"]["flags"]
    totals = document["totals"]
    assert totals["checked"] == 66 == totals["passed"] + totals["rejected"]
    assert totals["sources_flagged"] == 2 and totals["sources_failed"] == 0
    failing = {e["label"]: e["unexpected"] for e in document["expectations"] if not e["success"]}
    assert failing["expect_column_values_to_match_regex(url)"] == 1
    assert failing["expect_column_value_lengths_to_be_between(title)"] == 1
    json.dumps(document)  # every value serializes (datetimes bounds became strings)


def test_markdown_has_one_row_per_source(document: dict) -> None:
    text = quality_markdown(document)
    assert "| hostile | 6 | 4 | 0 | 2 | flagged |" in text
    assert "| nodates | 60 | 60 | 0 | 0 | flagged |" in text


def test_html_escapes_feed_text_and_carries_each_number(document: dict) -> None:
    page = render_quality_html([document], "s3://bucket/lake")
    assert "<script>" not in page and "&lt;script&gt;" in page

    class Cells(HTMLParser):
        found: dict[tuple[str, str, str], str] = {}
        current: tuple[str, str, str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if "data-metric" in a:
                self.current = (
                    a.get("data-source") or "",
                    a.get("data-expectation") or "",
                    a["data-metric"] or "",
                )

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                self.found[self.current] = data
                self.current = None

    cells = Cells()
    cells.feed(page)
    assert cells.found[("hostile", "", "rejected")] == "2"
    assert cells.found[("nodates", "", "status")] == "flagged"
    assert cells.found[("", "", "checked")] == "66"
    assert cells.found[("", "expect_column_values_to_match_regex(url)", "unexpected")] == "1"


def test_quality_objects_are_json_and_html_keyed_by_run(document: dict) -> None:
    objects = dict(quality_objects(document, "lake"))
    assert set(objects) == {
        "_validation/20261123T101010Z-abcd.json",
        "_validation/20261123T101010Z-abcd.html",
    }
    assert json.loads(objects["_validation/20261123T101010Z-abcd.json"])["run_id"] == document["run_id"]
    nothing = {**document, "totals": {**document["totals"], "checked": 0, "sources_flagged": 0}}
    assert quality_objects(nothing, "lake") == []


HOSTILE_ID = "<img src=x onerror=alert(1)>"


def at(document: dict[str, Any], when: datetime, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document as if validated at ``when`` (with only the ``keep`` sources, if given)."""
    sources = [s for s in document["sources"] if not keep or s["source_id"] in keep]
    run_id = when.strftime("%Y%m%dT%H%M%SZ-") + f"{int(when.timestamp()) % 65536:04x}"
    return {
        **document,
        "run_id": run_id,
        "validated_at": when.isoformat(timespec="seconds"),
        "sources": sources,
    }


def test_unreachable_sources_are_kept_and_shown(outcome: ValidationOutcome) -> None:
    document = validation_document(outcome, "20261123T101010Z-abcd", "poll", {HOSTILE_ID: "HTTP 503 <b>"})
    assert document["unreachable"] == {HOSTILE_ID: "HTTP 503 <b>"}
    assert document["totals"]["sources_unreachable"] == 1
    only_down = {**document, "totals": {**document["totals"], "checked": 0, "sources_flagged": 0}}
    assert has_findings(only_down)
    page = render_quality_html([document], "lake")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "<b>" not in page


def test_page_in_a_browser_charts_each_source_over_the_weeks(
    outcome: ValidationOutcome, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    base = validation_document(outcome, "r", "poll", {HOSTILE_ID: "HTTP 503"})
    older = [
        at(base, now - timedelta(days=10)),
        at(base, now - timedelta(days=6)),
        at(base, now - timedelta(days=5, hours=1)),
        at(base, now - timedelta(days=1), keep=("hostile",)),
        at(base, now - timedelta(days=40)),  # outside the four weeks
    ]
    current = at(base, now, keep=("hostile",))
    objects = dict(quality_objects(current, "s3://bucket/lake", history=older))
    page = tmp_path / "quality.html"
    page.write_bytes(objects[f"_validation/{current['run_id']}.html"])
    shot = tmp_path / "quality.png"
    dom = rendered_dom(page, screenshot=shot)

    shown = figures(dom)
    # Each run passed 4 hostile rows (2 rejected) and 60 nodates rows; nodates stopped 5 days ago.
    assert shown.found[("", "hostile", "", "rows_in_window")] == str(4 * 5)
    assert shown.found[("", "hostile", "", "quarantined_in_window")] == str(2 * 5)
    assert shown.found[("", "hostile", "", "activity")] == "ok"
    assert shown.found[("", "nodates", "", "rows_in_window")] == str(60 * 3)
    assert shown.found[("", "nodates", "", "activity")] == "quiet"
    assert shown.found[("", HOSTILE_ID, "", "activity")] == "quiet"
    assert shown.found[("", HOSTILE_ID, "", "failed_runs_in_window")] == "5"
    assert "<img" not in dom  # the hostile id stayed text
    charts = Charts()
    charts.feed(dom)
    assert charts.quiet == {"hostile": "false", "nodates": "true", HOSTILE_ID: "true"}
    assert charts.titles[0] == f"{HOSTILE_ID}: 0 rows in 28 days, 5 failed runs; peak 0 rows a day"
    assert any("0 rows the last 5 days" in t or "0 rows the last 6 days" in t for t in charts.titles)
    assert shot.stat().st_size > 10_000


class Charts(HTMLParser):
    """The inline SVG charts of a rendered page: quiet flag per source and each chart's title."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet: dict[str, str] = {}
        self.titles: list[str] = []
        self._in_chart = self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._in_chart = True
            self.quiet[a["data-source"]] = a["data-quiet"]
        self._in_title = self._in_chart and tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_chart = self._in_chart and tag != "svg"
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def test_page_leaves_out_damaged_runs_and_renders_the_good_ones(
    document: dict, tmp_path: Path, caplog
) -> None:
    good_run = document["run_id"]
    broken: dict[str, Any] = {
        "20261123T090000Z-notime": {k: v for k, v in document.items() if k != "totals"},
        "20261123T090001Z-seconds": {**document, "validate_seconds": "slow"},
        "20261123T090002Z-sources": {**document, "sources": [{"source_id": "s", "failed": 3}]},
        "20261123T090003Z-unexpected": {
            **document,
            "expectations": [{**document["expectations"][0], "unexpected": "many"}],
        },
        "20261123T090004Z-unreach": {**document, "unreachable": ["x"]},
    }
    store = open_store(str(tmp_path / "lake"))
    store.put(validation_key(good_run), json.dumps(document).encode())
    store.put(validation_key("20261123T090005Z-garbage"), b"\x00\xff{")
    for run_id, bad in broken.items():
        store.put(validation_key(run_id), json.dumps({**bad, "run_id": run_id}).encode())
    # What `feedlake quality report` does: the last runs, and the weeks of history for the charts.
    keys = [k for k in store.list("_validation/") if k.endswith(".json")]
    now = document_time(document)
    with caplog.at_level("WARNING"):
        page = render_quality_html(
            read_documents(store, keys), store.uri(), history=read_history(store, now), now=now
        )
    assert f"id='run-{good_run}'" in page and "1 run(s)" in page
    for run_id in broken:
        assert f"id='run-{run_id}'" not in page
    warned = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for run_id in [*broken, "20261123T090005Z-garbage"]:
        assert validation_key(run_id) in warned
    # The charts are drawn from every document they can read: the good run's sources are there.
    for source in document["sources"]:
        assert f"data-source='{source['source_id']}' data-metric=rows_in_window>" in page


def test_page_of_documents_that_are_not_objects_still_renders(document: dict, caplog) -> None:
    with caplog.at_level("WARNING", logger="feedlake.tasks.quality.report"):
        page = render_quality_html([[1, 2], "text", None, document], "lake")  # type: ignore[list-item]
    assert f"id='run-{document['run_id']}'" in page and "1 run(s)" in page
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 3
