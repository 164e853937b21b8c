"""Validate stage: check a run's new rows with Great Expectations and sort them by severity.

Input: the new rows of every source as one Arrow table. Output: rows accepted for ``articles/``,
rows rejected to ``_quarantine/`` (each with the expectations it failed), sources whose whole batch
failed, and per-source counts. Suites live in ``schemas/expectations/``; each expectation carries
its severity there (``reject`` / ``warn`` / ``fail``). pandas appears only here, on a copy of the
checked columns, and is never written.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from tasks.errors import ConfigError

log = logging.getLogger(__name__)

SUITE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "expectations"
DEFAULT_SUITE = SUITE_DIR / "articles_v1.json"
SEVERITIES = ("reject", "warn", "fail")
_RELATIVE_TIME = re.compile(r"^now([+-]\d+)([dh])$")
QUARANTINE_FIELDS = (
    pa.field("failed_expectations", pa.list_(pa.string()), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
)


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, with the severity that decides what a failure does."""

    type: str
    kwargs: dict[str, Any]
    severity: str

    @property
    def label(self) -> str:
        """Short name used in reports and in the quarantine's failed_expectations column."""
        column = self.kwargs.get("column")
        return f"{self.type}({column})" if column else self.type


@dataclass
class SourceQuality:
    """Validation counts for one source in one run."""

    checked: int = 0
    passed: int = 0
    warned: int = 0
    rejected: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationOutcome:
    """Rows sorted by the suite: accepted, quarantined, and the per-source tally."""

    accepted: pa.Table
    quarantined: pa.Table
    by_source: dict[str, SourceQuality]
    suite: str


def load_suite(path: Path = DEFAULT_SUITE) -> tuple[str, list[ExpectationSpec]]:
    """Read a suite file: its name and its expectations with severities."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read expectation suite {path}: {exc}") from exc
    specs = []
    for number, item in enumerate(document.get("expectations", []), start=1):
        severity = item.get("severity")
        if severity not in SEVERITIES:
            raise ConfigError(
                f"suite {path}: expectation {number} has severity {severity!r}; use {SEVERITIES}"
            )
        specs.append(ExpectationSpec(item["type"], _resolve_times(dict(item.get("kwargs", {}))), severity))
    return str(document.get("name", path.stem)), specs


class ArticleValidator:
    """A Great Expectations context and suite, built once per run and used for every batch."""

    def __init__(self, suite_path: Path = DEFAULT_SUITE) -> None:
        # GX would otherwise try to phone home on import; these machines may have no network.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.suite_name, self.specs = load_suite(suite_path)
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas("feedlake")
        self._batch_definition = source.add_dataframe_asset("articles").add_batch_definition_whole_dataframe(
            "run"
        )
        suite = gx.ExpectationSuite(name=self.suite_name)
        for index, spec in enumerate(self.specs):
            expectation_class = _expectation_class(gx, spec.type)
            suite.add_expectation(expectation_class(**spec.kwargs, meta={"index": index}))
        self._suite = self._context.suites.add(suite)
        self._columns = sorted({str(s.kwargs["column"]) for s in self.specs if "column" in s.kwargs})

    def validate(self, table: pa.Table) -> ValidationOutcome:
        """Run the suite over ``table`` and sort its rows by severity."""
        rows = table.num_rows
        source_ids = table.column("source_id").to_pylist()
        by_source: dict[str, SourceQuality] = {}
        for source_id in source_ids:
            by_source.setdefault(source_id, SourceQuality()).checked += 1
        if rows == 0:
            return ValidationOutcome(table, _quarantine_table(table, []), by_source, self.suite_name)
        failures: list[list[str]] = [[] for _ in range(rows)]
        warned = [False] * rows
        for spec, positions in self._failing_rows(table):
            for position in positions:
                source_id = source_ids[position]
                if spec.severity == "reject":
                    failures[position].append(spec.label)
                elif spec.severity == "warn":
                    warned[position] = True
                elif spec.label not in by_source[source_id].failed:
                    by_source[source_id].failed.append(spec.label)
        failed_sources = {s for s, q in by_source.items() if q.failed}
        rejected_mask = [bool(f) and source_ids[i] not in failed_sources for i, f in enumerate(failures)]
        accepted_mask = [not f and source_ids[i] not in failed_sources for i, f in enumerate(failures)]
        for position in range(rows):
            quality = by_source[source_ids[position]]
            quality.rejected += rejected_mask[position]
            quality.passed += accepted_mask[position]
            quality.warned += warned[position] and accepted_mask[position]
        rejected_positions = [i for i, r in enumerate(rejected_mask) if r]
        quarantined = _quarantine_table(
            table.take(pa.array(rejected_positions, pa.int64())), [failures[i] for i in rejected_positions]
        )
        accepted = table.filter(pa.array(accepted_mask))
        log.info(
            "validate: %d rows, %d accepted, %d quarantined, %d sources failed",
            rows,
            accepted.num_rows,
            quarantined.num_rows,
            len(failed_sources),
        )
        return ValidationOutcome(accepted, quarantined, by_source, self.suite_name)

    def _failing_rows(self, table: pa.Table) -> list[tuple[ExpectationSpec, list[int]]]:
        frame = table.select(self._columns).to_pandas()
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
        # COMPLETE lists every failing row index, not GX's default sample of twenty.
        result = batch.validate(self._suite, result_format={"result_format": "COMPLETE"})
        found = []
        for item in result.results:
            if item.success:
                continue
            config = item.expectation_config
            if config is None or config.meta is None:
                continue
            spec = self.specs[int(config.meta["index"])]
            positions = item.result.get("unexpected_index_list")
            if positions is None:
                # A batch-level expectation: no single row is to blame, so every row is.
                positions = list(range(table.num_rows))
            found.append((spec, [int(p) for p in positions]))
        return found


def _expectation_class(gx: Any, type_name: str) -> Any:
    class_name = "".join(part.title() for part in type_name.split("_"))
    expectation_class = getattr(gx.expectations, class_name, None)
    if expectation_class is None:
        raise ConfigError(f"unknown expectation type {type_name!r}")
    return expectation_class


def _resolve_times(kwargs: dict[str, Any]) -> dict[str, Any]:
    # Suite files say "now+1d" for a bound relative to the run; ISO strings become datetimes.
    for key in ("min_value", "max_value"):
        value = kwargs.get(key)
        if not isinstance(value, str):
            continue
        match = _RELATIVE_TIME.match(value)
        if match:
            amount = int(match.group(1))
            delta = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
            kwargs[key] = datetime.now(UTC) + delta
        else:
            kwargs[key] = datetime.fromisoformat(value)
    return kwargs


def _quarantine_table(rows: pa.Table, failures: Sequence[list[str]]) -> pa.Table:
    failed = pa.array(list(failures), pa.list_(pa.string()))
    stage = pa.array(["validate"] * rows.num_rows, pa.string())
    table = rows.append_column(QUARANTINE_FIELDS[0], failed).append_column(QUARANTINE_FIELDS[1], stage)
    return table.replace_schema_metadata(rows.schema.metadata)


def quarantine_schema(article_schema: pa.Schema) -> pa.Schema:
    """The quarantine table's schema: the article schema plus the failure columns."""
    return pa.schema([*article_schema, *QUARANTINE_FIELDS], metadata=article_schema.metadata)
