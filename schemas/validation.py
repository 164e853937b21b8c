"""The validation results table: one row per source and run, what its data-quality checks found.

Every run that validates rows (poll, backfill batch, quarantine replay, re-extraction) commits these
rows with its data, so a reader can chart a source's quality over time with any engine; the run's
full record (every expectation, examples) stays in ``_validation/<run_id>.json``.
"""

from __future__ import annotations

import pyarrow as pa

from feedlake.schemas.article import TIMESTAMP


def _field(name: str, kind: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={b"description": doc.encode()})


VALIDATION_RESULTS_SCHEMA = pa.schema(
    [
        _field("run_id", pa.string(), "The run that validated (as in the articles' run_id)", nullable=False),
        _field("kind", pa.string(), "What ran: poll, backfill, replay or reextract", nullable=False),
        _field("suite", pa.string(), "The expectation suite's name", nullable=False),
        _field("validated_at", TIMESTAMP, "When the run validated, UTC", nullable=False),
        _field("source_id", pa.string(), "The source", nullable=False),
        _field("checked", pa.int64(), "Rows checked", nullable=False),
        _field("passed", pa.int64(), "Rows committed to articles", nullable=False),
        _field("warned", pa.int64(), "Rows committed with a warning", nullable=False),
        _field("rejected", pa.int64(), "Rows held in quarantine", nullable=False),
        _field("failed", pa.list_(pa.string()), "Batch expectations that failed (the batch is held)"),
        _field("flags", pa.list_(pa.string()), "Warnings about the batch"),
        _field("unreachable", pa.string(), "Why the source checked nothing: its fetch or parse failed"),
    ]
)

# Partitioned by the month the run validated in: a quality chart over a time range reads its months.
VALIDATION_PARTITION_COLUMN = "validated_month"
VALIDATION_PARTITION_FIELD = pa.field(
    VALIDATION_PARTITION_COLUMN,
    pa.string(),
    nullable=False,
    metadata={b"description": b"Partition: the month (YYYY-MM) of validated_at"},
)
