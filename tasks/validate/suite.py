"""Expectation suite files: which checks run over rows and over per-source batches, and their severity.

A suite file (``schemas/expectations/articles_v<N>.json``) names the article schema version it is
written for. ``row_expectations`` run over a run's new rows; ``batch_expectations`` run over one
summary row per source batch (see ``BATCH_COLUMNS``). Each expectation carries its severity:
``reject`` (failing rows go to quarantine), ``warn`` (recorded, rows kept) or ``fail`` (the whole
batch of that source is held in quarantine and the source is reported as failed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pyarrow as pa

from feedlake.schemas.article import SCHEMA_VERSION
from feedlake.tasks.errors import ConfigError

# The suites ship inside feedlake.schemas (package data): found the same way installed or editable.
SUITE_DIR = Path(str(files("feedlake.schemas") / "expectations"))
DEFAULT_SUITE = SUITE_DIR / f"articles_v{SCHEMA_VERSION}.json"
SEVERITIES = ("reject", "warn", "fail")
SCOPES = ("row", "batch")
# The per-source batch summary that batch expectations check: one row per source and run.
BATCH_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("items_in_feed", pa.int64()),
        pa.field("items_last_time", pa.int64()),
        pa.field("missing_date_share", pa.float64()),
        pa.field("missing_text_share", pa.float64()),
        pa.field("rejected_share", pa.float64()),
        pa.field("went_empty", pa.bool_()),
        # Article pages this batch tried to fetch (full text), and the share that gave no body.
        pa.field("pages_tried", pa.int64()),
        pa.field("pages_failed_share", pa.float64()),
    ]
)
BATCH_COLUMNS = tuple(BATCH_SCHEMA.names)
_RELATIVE_TIME = re.compile(r"^now([+-]\d+)([dh])$")


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, with the severity that decides what a failure does."""

    type: str
    kwargs: dict[str, Any]
    severity: str
    scope: str
    description: str = ""

    @property
    def label(self) -> str:
        """Short name used in reports and in the quarantine's failed_expectations column."""
        column = self.kwargs.get("column")
        name = f"{self.type}({column})" if column else self.type
        return name if self.scope == "row" else f"batch:{name}"


@dataclass(frozen=True)
class Suite:
    """A loaded suite file."""

    name: str
    path: Path
    rows: tuple[ExpectationSpec, ...]
    batches: tuple[ExpectationSpec, ...]


def load_suite(path: Path = DEFAULT_SUITE) -> Suite:
    """Read and check a suite file; every problem is a ConfigError naming the file and the entry."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read expectation suite {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"suite {path}: expected a JSON object")
    version = str(document.get("schema_version", ""))
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"suite {path} is for article schema {version or '(none)'}, this feedlake writes "
            f"schema {SCHEMA_VERSION}"
        )
    rows = _specs(path, document.get("row_expectations"), "row")
    batches = _specs(path, document.get("batch_expectations", []), "batch")
    return Suite(str(document.get("name") or Path(path).stem), Path(path), rows, batches)


def _specs(path: Path, items: object, scope: str) -> tuple[ExpectationSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"suite {path}: '{scope}_expectations' must be a list")
    specs = []
    for number, item in enumerate(items, start=1):
        where = f"suite {path}: {scope} expectation {number}"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ConfigError(f"{where} needs a 'type'")
        severity = item.get("severity")
        if severity not in SEVERITIES:
            raise ConfigError(f"{where} has severity {severity!r}; use one of {', '.join(SEVERITIES)}")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where}: 'kwargs' must be an object")
        column = kwargs.get("column")
        if scope == "batch" and column is not None and column not in BATCH_COLUMNS:
            raise ConfigError(f"{where} checks {column!r}; batch columns are {', '.join(BATCH_COLUMNS)}")
        specs.append(
            ExpectationSpec(
                item["type"], _resolve_times(dict(kwargs)), severity, scope, str(item.get("description", ""))
            )
        )
    return tuple(specs)


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
            try:
                kwargs[key] = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ConfigError(f"bound {key}={value!r} is neither a date nor now±N[dh]") from exc
    return kwargs
