"""quality.results_table: a validation document as rows of the validation results table."""

from __future__ import annotations

from datetime import UTC, datetime

from feedlake.schemas.validation import VALIDATION_RESULTS_SCHEMA
from feedlake.tasks.quality.results_table import validation_rows


def document(**extra: object) -> dict[str, object]:
    return {
        "run_id": "20261128T120000Z-0000011a",
        "kind": "poll",
        "suite": "articles",
        "validated_at": "2026-11-28T12:00:05+00:00",
        "sources": [
            {
                "source_id": "a",
                "checked": 5,
                "passed": 4,
                "warned": 1,
                "rejected": 1,
                "failed": [],
                "flags": ["x"],
            },
            {
                "source_id": "b",
                "checked": 2,
                "passed": 0,
                "warned": 0,
                "rejected": 2,
                "failed": ["batch:y"],
                "flags": [],
            },
        ],
        **extra,
    }


def test_one_row_per_checked_source_with_its_counts() -> None:
    rows = validation_rows(document()).to_pylist()
    assert [(r["source_id"], r["checked"], r["passed"], r["rejected"], r["failed"]) for r in rows] == [
        ("a", 5, 4, 1, []),
        ("b", 2, 0, 2, ["batch:y"]),
    ]
    assert rows[0]["validated_at"] == datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
    assert all(r["unreachable"] is None for r in rows)


def test_unreachable_sources_get_a_row_with_the_reason_and_no_counts() -> None:
    table = validation_rows(document(unreachable={"gone": "HTTP 404"}))
    assert table.schema == VALIDATION_RESULTS_SCHEMA
    gone = [r for r in table.to_pylist() if r["source_id"] == "gone"]
    assert gone == [
        {
            **{k: gone[0][k] for k in ("run_id", "kind", "suite", "validated_at")},
            "source_id": "gone",
            "checked": 0,
            "passed": 0,
            "warned": 0,
            "rejected": 0,
            "failed": [],
            "flags": [],
            "unreachable": "HTTP 404",
        }
    ]


def test_a_run_that_validated_nothing_has_no_rows() -> None:
    table = validation_rows(document(sources=[]))
    assert table.num_rows == 0 and table.schema == VALIDATION_RESULTS_SCHEMA
