"""Validation results as JSON, markdown and HTML: the numbers match the outcome, feed text is inert."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pyarrow as pa
import pytest

from tasks.quality_report import quality_markdown, quality_objects, render_quality_html, validation_document
from tasks.validate import ArticleValidator, FeedFacts
from tests.article_rows import corpus_rows, make_rows, replace_column

NO_DATES = "corpus/miniflux-v2/rdf_UTF8.xml"


@pytest.fixture(scope="module")
def document() -> dict:
    rows = make_rows("hostile", 6)
    titles = ["<script>alert(1)</script>", "ok", "x" * 1001, "ok", "ok", "ok"]
    rows = replace_column(
        replace_column(rows, "title", titles),
        "url",
        ["javascript:<script>alert(1)</script>", *rows.column("url").to_pylist()[1:]],
    )
    rows = pa.concat_tables([rows, corpus_rows(NO_DATES, "nodates")])
    outcome = ArticleValidator().validate(rows, {"nodates": FeedFacts(60, 60), "hostile": FeedFacts(6, 6)})
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
