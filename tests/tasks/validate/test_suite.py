"""Suite files: severities and scopes come from the file, and every mistake names file and entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.validate.suite import DEFAULT_SUITE, load_suite


def write_suite(tmp_path: Path, **changes: object) -> Path:
    document = json.loads(DEFAULT_SUITE.read_text())
    document.update(changes)
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(document))
    return path


def test_default_suite_uses_every_severity_at_both_scopes() -> None:
    suite = load_suite()
    assert suite.name == "articles_v2"
    assert {s.severity for s in suite.rows} == {"reject", "warn", "fail"}
    assert {s.severity for s in suite.batches} == {"warn", "fail"}
    assert all(s.description for s in (*suite.rows, *suite.batches))
    labels = [s.label for s in (*suite.rows, *suite.batches)]
    assert len(labels) == len(set(labels)), "labels name a failure in quarantine rows: keep them unique"


def test_relative_time_bounds_resolve_at_load() -> None:
    published = next(s for s in load_suite().rows if s.kwargs.get("column") == "published_at")
    upper = published.kwargs["max_value"]
    assert abs(upper - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)
    assert published.kwargs["min_value"] == datetime(1990, 1, 1, tzinfo=UTC)


def test_bad_severity_names_the_entry(tmp_path: Path) -> None:
    rows = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "url"}, "severity": "panic"}]
    with pytest.raises(ConfigError, match=r"row expectation 1 has severity 'panic'"):
        load_suite(write_suite(tmp_path, row_expectations=rows))


def test_suite_for_another_schema_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is for article schema 1, this feedlake writes schema 2"):
        load_suite(write_suite(tmp_path, schema_version="1"))


def test_batch_expectation_on_an_unknown_column_is_refused(tmp_path: Path) -> None:
    batches = [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "title"}, "severity": "warn"}
    ]
    with pytest.raises(ConfigError, match="batch expectation 1 checks 'title'"):
        load_suite(write_suite(tmp_path, batch_expectations=batches))


def test_unreadable_suite_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        load_suite(path)


def test_bad_time_bound_is_a_config_error(tmp_path: Path) -> None:
    rows = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "published_at", "max_value": "tomorrow"},
            "severity": "reject",
        }
    ]
    with pytest.raises(ConfigError, match="tomorrow"):
        load_suite(write_suite(tmp_path, row_expectations=rows))


def test_unknown_expectation_type_is_a_config_error(tmp_path: Path) -> None:
    from feedlake.tasks.validate.validator import ArticleValidator

    rows = [{"type": "expect_the_unexpected", "kwargs": {}, "severity": "warn"}]
    with pytest.raises(ConfigError, match="expect_the_unexpected"):
        ArticleValidator(write_suite(tmp_path, row_expectations=rows))
