"""A run's validation document as rows of the validation results table (one per source)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

from feedlake.schemas.validation import VALIDATION_RESULTS_SCHEMA


def validation_rows(document: Mapping[str, Any]) -> pa.Table:
    """One row per source the document covers: the checked ones, and the unreachable ones (their
    fetch or parse failed, so they checked nothing) with zero counts and the reason."""
    validated_at = datetime.fromisoformat(str(document["validated_at"]))
    common = {"run_id": document["run_id"], "kind": document["kind"], "suite": document["suite"]}
    rows: list[dict[str, Any]] = [
        {
            **common,
            "validated_at": validated_at,
            "source_id": source["source_id"],
            **{name: int(source[name]) for name in ("checked", "passed", "warned", "rejected")},
            "failed": list(source["failed"]),
            "flags": list(source["flags"]),
            "unreachable": None,
        }
        for source in document["sources"]
    ]
    checked = {row["source_id"] for row in rows}
    rows += [
        {
            **common,
            "validated_at": validated_at,
            "source_id": source_id,
            "checked": 0,
            "passed": 0,
            "warned": 0,
            "rejected": 0,
            "failed": [],
            "flags": [],
            "unreachable": reason,
        }
        for source_id, reason in dict(document.get("unreachable") or {}).items()
        if source_id not in checked
    ]
    if not rows:  # a run that validated nothing (every feed answered 304)
        return VALIDATION_RESULTS_SCHEMA.empty_table()
    return pa.Table.from_pylist(rows, schema=VALIDATION_RESULTS_SCHEMA)
