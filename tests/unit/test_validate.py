"""Great Expectations stage: every failing row found, each severity doing what the suite says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.errors import ConfigError
from tasks.validate import ArticleValidator, load_suite
from tests.article_rows import make_rows


@pytest.fixture(scope="module")
def validator() -> ArticleValidator:
    return ArticleValidator()


def replace(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, table.schema.field(name).type))


def test_clean_rows_all_pass(validator: ArticleValidator) -> None:
    outcome = validator.validate(make_rows("src", 50))
    assert outcome.accepted.num_rows == 50 and outcome.quarantined.num_rows == 0
    assert outcome.by_source["src"].passed == 50


def test_reject_finds_every_failing_row_not_a_sample(validator: ArticleValidator) -> None:
    rows = make_rows("src", 5000)
    urls = rows.column("url").to_pylist()
    bad = set(range(0, 5000, 2))  # 2,500 failing rows: far past GX's default sample of 20
    rows = replace(rows, "url", [f"ftp://x/{i}" if i in bad else u for i, u in enumerate(urls)])
    outcome = validator.validate(rows)
    assert outcome.quarantined.num_rows == len(bad)
    assert outcome.accepted.num_rows == 5000 - len(bad)
    assert set(outcome.quarantined.column("url").to_pylist()) == {f"ftp://x/{i}" for i in bad}
    failed = outcome.quarantined.column("failed_expectations").to_pylist()
    assert all(f == ["expect_column_values_to_match_regex(url)"] for f in failed)
    assert outcome.by_source["src"].rejected == len(bad)


def test_implausible_dates_are_rejected(validator: ArticleValidator) -> None:
    rows = make_rows("src", 3)
    future = datetime.now(UTC) + timedelta(days=30)
    rows = replace(rows, "published_at", [datetime(1980, 1, 1, tzinfo=UTC), future, None])
    outcome = validator.validate(rows)
    assert outcome.quarantined.num_rows == 2
    assert outcome.accepted.column("published_at").to_pylist() == [None]


def test_warn_keeps_rows_and_counts_them(validator: ArticleValidator) -> None:
    rows = replace(make_rows("src", 4), "title", [None, None, "a", "b"])
    outcome = validator.validate(rows)
    assert outcome.accepted.num_rows == 4
    assert outcome.by_source["src"].warned == 2


def test_fail_drops_only_that_sources_batch(tmp_path: Path) -> None:
    suite = {
        "name": "strict",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "title"}, "severity": "fail"}
        ],
    }
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    good = make_rows("good", 3)
    bad = replace(make_rows("bad", 3), "title", [None, "x", "y"])
    outcome = ArticleValidator(path).validate(pa.concat_tables([good, bad]))
    assert outcome.by_source["bad"].failed == ["expect_column_values_to_not_be_null(title)"]
    assert set(outcome.accepted.column("source_id").to_pylist()) == {"good"}
    assert outcome.quarantined.num_rows == 0


def test_bad_severity_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"expectations": [{"type": "x", "kwargs": {}, "severity": "maybe"}]}))
    with pytest.raises(ConfigError, match="severity"):
        load_suite(path)


def test_relative_time_bounds_resolve_at_load() -> None:
    _, specs = load_suite()
    bounds = next(s for s in specs if s.kwargs.get("column") == "published_at").kwargs
    assert bounds["min_value"] == datetime(1990, 1, 1, tzinfo=UTC)
    assert abs(bounds["max_value"] - datetime.now(UTC) - timedelta(days=1)) < timedelta(minutes=1)
