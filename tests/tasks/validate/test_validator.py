"""Great Expectations stage: every failing row found, each severity doing what the suite says.

Rows are real corpus feeds, parsed and normalized as a poll would, plus deliberately broken ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from feedlake.tasks.validate.validator import ArticleValidator, FeedFacts
from tests.support.article_rows import corpus_rows, make_rows, replace_column

CENTCOM = "centcom/centcom-press-releases.RSS.ashx.xml"
UN_NEWS = "corpus/FeedVerse/un-news-europe.rss.xml"
NO_DATES = "corpus/miniflux-v2/rdf_UTF8.xml"  # 60 real items, none with a date
NO_TEXT = "corpus/rss-parser/rss-1.rss"  # 69 real items, titles and links only
NO_LINKS = "corpus/fastfeedparser/cc314ce5dfbb3adc.areweanticheatyet-1046items.xml"


@pytest.fixture(scope="module")
def validator() -> ArticleValidator:
    return ArticleValidator()


def labels(outcome, source_id: str) -> list[str]:
    return outcome.by_source[source_id].failed


def test_real_feed_passes_every_check(validator: ArticleValidator) -> None:
    rows = corpus_rows(CENTCOM, "centcom")
    outcome = validator.validate(rows, {"centcom": FeedFacts(rows.num_rows, rows.num_rows)})
    quality = outcome.by_source["centcom"]
    assert (quality.checked, quality.passed, quality.rejected) == (rows.num_rows, rows.num_rows, 0)
    assert quality.flags == [] and quality.failed == []
    assert all(r.unexpected == 0 for r in outcome.results)
    assert {r.spec.scope for r in outcome.results} == {"row", "batch"}


def test_reject_finds_every_failing_row_not_a_sample(validator: ArticleValidator) -> None:
    rows = make_rows("src", 5000)
    urls = rows.column("url").to_pylist()
    bad = set(range(0, 5000, 2))  # 2,500 failing rows: far past GX's default sample of 20
    rows = replace_column(rows, "url", [f"ftp://x/{i}" if i in bad else u for i, u in enumerate(urls)])
    # The row count is below the fail threshold's share only per batch; split into many batches.
    keys = [f"b{i // 2}" for i in range(5000)]
    outcome = validator.validate(rows, batch_keys=keys)
    # An independent check over the Arrow batch: exactly the rows whose URL is not http(s).
    not_http = pc.invert(pc.match_substring_regex(rows.column("url"), r"^https?://")).to_pylist()
    assert {i for i, failing in enumerate(not_http) if failing} == bad
    assert outcome.quarantined.num_rows == len(bad) == 2500
    assert set(outcome.quarantined.column("url").to_pylist()) == {f"ftp://x/{i}" for i in bad}
    assert set(outcome.held_positions) == bad
    failed = outcome.quarantined.column("failed_expectations").to_pylist()
    assert all(f == ["expect_column_values_to_match_regex(url)"] for f in failed)
    result = next(r for r in outcome.results if r.spec.label == "expect_column_values_to_match_regex(url)")
    assert result.unexpected == 2500 and len(result.examples) == 5


def test_reject_holds_broken_rows_of_a_real_feed_and_keeps_the_rest(validator: ArticleValidator) -> None:
    rows = corpus_rows(UN_NEWS, "un")
    n = rows.num_rows
    titles = rows.column("title").to_pylist()
    titles[0] = "x" * 1001  # a body in the title field
    published = rows.column("published_at").to_pylist()
    published[1] = datetime(1985, 1, 1, tzinfo=UTC)
    published[2] = datetime.now(UTC) + timedelta(days=3)
    text = rows.column("content_text").to_pylist()
    text[3] = "y" * 1_000_001
    rows = replace_column(
        replace_column(replace_column(rows, "title", titles), "published_at", published), "content_text", text
    )
    outcome = validator.validate(rows)
    held = dict(
        zip(
            outcome.quarantined.column("article_id").to_pylist(),
            outcome.quarantined.column("failed_expectations").to_pylist(),
            strict=True,
        )
    )
    ids = rows.column("article_id").to_pylist()
    assert held == {
        ids[0]: ["expect_column_value_lengths_to_be_between(title)"],
        ids[1]: ["expect_column_values_to_be_between(published_at)"],
        ids[2]: ["expect_column_values_to_be_between(published_at)"],
        ids[3]: ["expect_column_value_lengths_to_be_between(content_text)"],
    }
    assert outcome.accepted.num_rows == n - 4
    assert outcome.quarantined.column("stage").to_pylist() == ["validate"] * 4
    assert outcome.by_source["un"].rejected == 4 and outcome.by_source["un"].failed == []


def test_the_same_version_twice_in_one_batch_is_rejected(validator: ArticleValidator) -> None:
    rows = make_rows("src", 6)
    ids = rows.column("article_id").to_pylist()
    hashes = rows.column("content_hash").to_pylist()
    rows = replace_column(rows, "article_id", [ids[0], *ids[1:5], ids[0]])
    # One article in two versions (another content_hash): both land.
    assert validator.validate(rows).quarantined.num_rows == 0
    rows = replace_column(rows, "content_hash", [hashes[0], *hashes[1:5], hashes[0]])
    outcome = validator.validate(rows)
    assert outcome.quarantined.column("article_id").to_pylist() == [ids[0], ids[0]]


def test_warn_keeps_rows_of_a_real_feed_and_counts_them(validator: ArticleValidator) -> None:
    rows = corpus_rows(NO_LINKS, "anticheat")  # 1,046 real entries without a link
    languages = ["english"] * 10 + rows.column("language").to_pylist()[10:]
    rows = replace_column(rows, "language", languages)
    outcome = validator.validate(rows)
    quality = outcome.by_source["anticheat"]
    assert outcome.accepted.num_rows == rows.num_rows and quality.warned == rows.num_rows
    by_label = {r.spec.label: r.unexpected for r in outcome.results}
    assert by_label["expect_column_values_to_not_be_null(url)"] == rows.num_rows
    assert by_label["expect_column_values_to_match_regex(language)"] == 10


@pytest.mark.parametrize(
    ("code", "valid"),
    [("en", True), ("en-us", True), ("zh-hant-tw", True), ("fil", True), ("xx", False), ("english", False)],
)
def test_language_must_be_a_real_code(validator: ArticleValidator, code: str, valid: bool) -> None:
    rows = replace_column(make_rows("src", 1), "language", [code])
    assert (validator.validate(rows).by_source["src"].warned == 0) is valid


def test_a_row_that_warns_and_is_rejected_counts_once_per_source(validator: ArticleValidator) -> None:
    # Row 0 has no title (warn) and an ftp link (reject); row 1 only has no title.
    first = make_rows("a", 10)
    first = replace_column(first, "title", [None, None] + [f"t{i}" for i in range(2, 10)])
    first = replace_column(first, "url", ["ftp://x/0"] + [f"http://example.test/{i}" for i in range(1, 10)])
    outcome = validator.validate(pa.concat_tables([first, make_rows("b", 6)]))
    counts = {s: (q.checked, q.passed, q.rejected, q.warned) for s, q in outcome.by_source.items()}
    assert counts == {"a": (10, 9, 1, 1), "b": (6, 6, 0, 0)}
    assert outcome.held_positions == (0,)
    assert outcome.quarantined.column("url").to_pylist() == ["ftp://x/0"]
    assert outcome.accepted.num_rows == 15 and "ftp://x/0" not in outcome.accepted.column("url").to_pylist()


def test_batch_warnings_flag_sources_not_rows(validator: ArticleValidator) -> None:
    rows = pa.concat_tables(
        [corpus_rows(NO_DATES, "nodates"), corpus_rows(NO_TEXT, "notext"), corpus_rows(CENTCOM, "centcom")]
    )
    feeds = {
        "nodates": FeedFacts(60, 60),
        "notext": FeedFacts(69, 69),
        "centcom": FeedFacts(3, 3),
        "emptied": FeedFacts(0, 12),  # had 12 items last time, none now
        "quiet": FeedFacts(0, None),  # never had any: nothing to flag
    }
    outcome = validator.validate(rows, feeds)
    flags = {s: q.flags for s, q in outcome.by_source.items()}
    assert flags["nodates"] == [
        "expected at most half of a source's new rows lack a publication date; got missing_date_share=1.000"
    ]
    assert len(flags["notext"]) == 1 and "missing_text_share=1.000" in flags["notext"][0]
    assert len(flags["emptied"]) == 1 and "went_empty=True" in flags["emptied"][0]
    assert flags["centcom"] == [] and flags["quiet"] == []
    assert outcome.accepted.num_rows == rows.num_rows  # warnings keep every row


def test_fail_holds_the_whole_batch_of_that_source_only(validator: ArticleValidator) -> None:
    broken = corpus_rows(UN_NEWS, "broken")
    urls = broken.column("url").to_pylist()
    cut = int(len(urls) * 0.6) + 1  # most links broken: the feed itself is broken
    broken = replace_column(broken, "url", ["/relative"] * cut + urls[cut:])
    good = corpus_rows(CENTCOM, "centcom")
    outcome = validator.validate(pa.concat_tables([broken, good]))
    assert labels(outcome, "broken") == ["batch:expect_column_values_to_be_between(rejected_share)"]
    assert outcome.by_source["broken"].passed == 0
    assert outcome.by_source["broken"].rejected == broken.num_rows
    assert set(outcome.accepted.column("source_id").to_pylist()) == {"centcom"}
    held = outcome.quarantined.column("failed_expectations").to_pylist()
    # Rows that passed on their own are held for the batch, and say so.
    assert ["batch:expect_column_values_to_be_between(rejected_share)"] in held
    assert all("batch:expect_column_values_to_be_between(rejected_share)" in f for f in held)


def test_fail_needs_five_rows_so_one_bad_item_is_only_rejected(validator: ArticleValidator) -> None:
    rows = replace_column(make_rows("src", 4), "url", ["/a", "/b", "/c", "http://example.test/ok"])
    outcome = validator.validate(rows)
    assert labels(outcome, "src") == []
    assert outcome.quarantined.num_rows == 3 and outcome.accepted.num_rows == 1


def test_row_level_fail_severity_holds_the_batch(tmp_path) -> None:
    import json

    from feedlake.tasks.validate.suite import DEFAULT_SUITE

    suite = json.loads(DEFAULT_SUITE.read_text())
    suite["row_expectations"].append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "guid"}, "severity": "fail"}
    )
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    rows = pa.concat_tables([make_rows("a", 3), make_rows("b", 3)])
    rows = replace_column(rows, "guid", ["g1", None, "g3", "g4", "g5", "g6"])
    outcome = ArticleValidator(path).validate(rows)
    assert labels(outcome, "a") == ["expect_column_values_to_not_be_null(guid)"]
    assert outcome.accepted.column("source_id").to_pylist() == ["b"] * 3
    assert outcome.quarantined.num_rows == 3


def test_batch_level_reject_holds_that_batch_without_failing_the_source(tmp_path) -> None:
    import json

    from feedlake.tasks.validate.suite import DEFAULT_SUITE

    suite = json.loads(DEFAULT_SUITE.read_text())
    for item in suite["batch_expectations"]:
        if item["kwargs"]["column"] == "missing_date_share":
            item["severity"] = "reject"
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    rows = pa.concat_tables([corpus_rows(NO_DATES, "nodates"), corpus_rows(CENTCOM, "centcom")])
    outcome = ArticleValidator(path).validate(rows)
    assert outcome.by_source["nodates"].rejected == 60 and outcome.by_source["nodates"].failed == []
    assert outcome.accepted.column("source_id").to_pylist() == ["centcom"] * 3
    held = outcome.quarantined.column("failed_expectations").to_pylist()
    assert held == [["batch:expect_column_values_to_be_between(missing_date_share)"]] * 60


def test_a_process_builds_each_suite_once_and_again_when_its_file_changes(tmp_path) -> None:
    import json

    from feedlake.tasks.errors import ConfigError
    from feedlake.tasks.validate.suite import DEFAULT_SUITE
    from feedlake.tasks.validate.validator import validator_for

    path = tmp_path / "suite.json"
    path.write_text(DEFAULT_SUITE.read_text())
    first = validator_for(path)
    assert validator_for(path) is first  # serve's second run reuses the context
    rows = replace_column(make_rows("a", 3), "guid", ["g1", None, "g3"])
    assert first.validate(rows).quarantined.num_rows == 0
    suite = json.loads(path.read_text())
    suite["row_expectations"].append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "guid"}, "severity": "reject"}
    )
    path.write_text(json.dumps(suite))
    changed = validator_for(path)
    assert changed is not first  # an edited suite is rebuilt, never served stale
    assert changed.validate(rows).quarantined.column("guid").to_pylist() == [None]
    path.unlink()
    with pytest.raises(ConfigError, match="suite.json"):
        validator_for(path)
