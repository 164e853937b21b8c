"""Validate stage: check a run's new rows with Great Expectations and sort them by severity.

Input: the new rows of every source as one Arrow table, plus what each feed held. Output: rows
accepted for ``articles/``, rows held for ``_quarantine/`` (each with the expectations it failed),
per-source counts and flags, and every expectation's result. Two passes, each one GX validation:
row expectations over all rows, then batch expectations over one summary row per source batch.
pandas appears only here, on a copy of the checked columns, and is never written.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import QUARANTINE_FIELDS
from feedlake.tasks.errors import ConfigError
from feedlake.tasks.validate.gx_import import import_great_expectations
from feedlake.tasks.validate.suite import BATCH_SCHEMA, DEFAULT_SUITE, ExpectationSpec, load_suite

log = logging.getLogger(__name__)

EXAMPLES_PER_EXPECTATION = 5
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class FeedFacts:
    """What a source's feed held this time and last time: input to the batch checks."""

    items_in_feed: int
    items_last_time: int | None = None


@dataclass
class SourceQuality:
    """Validation counts for one source in one run."""

    checked: int = 0
    passed: int = 0
    warned: int = 0
    rejected: int = 0
    failed: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExpectationResult:
    """How one expectation fared: failing rows (or batches), per source, with a few examples."""

    spec: ExpectationSpec
    unexpected: int
    by_source: dict[str, int]
    examples: tuple[dict[str, str | None], ...]


@dataclass(frozen=True)
class ValidationOutcome:
    """Rows sorted by the suite: accepted, quarantined, the per-source tally and every result."""

    accepted: pa.Table
    quarantined: pa.Table
    by_source: dict[str, SourceQuality]
    suite: str
    results: tuple[ExpectationResult, ...] = ()
    seconds: float = 0.0
    held_positions: tuple[int, ...] = ()


def preload_great_expectations() -> threading.Thread:
    """Import Great Expectations in a background thread, so the import overlaps the network fetch."""
    # The import takes seconds; a poll spends its first seconds waiting on feed servers.
    thread = threading.Thread(target=import_great_expectations, daemon=True)
    thread.start()
    return thread


_built: dict[tuple[str, str], ArticleValidator] = {}
_built_lock = threading.Lock()
_BUILT_KEPT = 4


def validator_for(suite_path: Path = DEFAULT_SUITE) -> ArticleValidator:
    """The validator of this suite file as it is now: built on first use, then reused by every run
    of this process (``feedlake serve``, a worker) until the file's content changes."""
    try:
        content = Path(suite_path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read expectation suite {suite_path}: {exc}") from exc
    key = (str(Path(suite_path).resolve()), hashlib.sha256(content).hexdigest())
    with _built_lock:
        if (validator := _built.get(key)) is not None:
            return validator
    validator = ArticleValidator(suite_path)
    with _built_lock:
        # A few suites at most (one per deployment's suite file); the oldest goes first.
        while len(_built) >= _BUILT_KEPT:
            del _built[next(iter(_built))]
        return _built.setdefault(key, validator)


class ArticleValidator:
    """A Great Expectations context and suite, built once and used for every batch it is given."""

    def __init__(self, suite_path: Path = DEFAULT_SUITE) -> None:
        gx = import_great_expectations()
        # One context serves one validation at a time (serve may run two polls at once).
        self._lock = threading.Lock()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        suite = load_suite(suite_path)
        self.suite_name = suite.name
        self.row_specs, self.batch_specs = suite.rows, suite.batches
        self._gx = gx
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas("feedlake")
        self._row_check = self._checker(source, "rows", self.row_specs)
        self._batch_check = self._checker(source, "batches", self.batch_specs)

    def _checker(self, source: Any, name: str, specs: Sequence[ExpectationSpec]) -> tuple[Any, Any]:
        definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("run")
        suite = self._gx.ExpectationSuite(name=f"{self.suite_name}-{name}")
        for index, spec in enumerate(specs):
            expectation_class = _expectation_class(self._gx, spec.type)
            kwargs = dict(spec.kwargs)
            if isinstance(kwargs.get("row_condition"), dict):
                kwargs["row_condition"] = self._condition(spec, kwargs["row_condition"])
            try:
                suite.add_expectation(expectation_class(**kwargs, meta={"index": index}))
            except Exception as exc:  # noqa: BLE001 - GX raises pydantic and its own errors alike
                raise ConfigError(f"suite {self.suite_name}: bad {spec.label}: {exc}") from exc
        return definition, self._context.suites.add(suite)

    def _condition(self, spec: ExpectationSpec, condition: dict[str, Any]) -> Any:
        """A GX condition object from the suite file's ``{"column", "op", "value"}`` form."""
        from great_expectations.expectations.row_conditions import Column

        column, op = condition.get("column"), condition.get("op")
        value: Any = condition.get("value")
        if not isinstance(column, str):
            raise ConfigError(f"suite {self.suite_name}: {spec.label}: row_condition needs a 'column'")
        if op in _COMPARISONS:
            return _COMPARISONS[op](Column(column), value)
        if op == "in":
            return Column(column).is_in(value)
        if op == "not_in":
            return Column(column).is_not_in(value)
        if op == "is_null":
            return Column(column).is_null()
        if op == "is_not_null":
            return Column(column).is_not_null()
        raise ConfigError(f"suite {self.suite_name}: {spec.label}: unknown row_condition op {op!r}")

    def validate(
        self,
        table: pa.Table,
        feeds: Mapping[str, FeedFacts] | None = None,
        batch_keys: Sequence[str] | None = None,
        stage: str = "validate",
    ) -> ValidationOutcome:
        """Run the suite over ``table`` and sort its rows by severity.

        ``feeds`` gives each source's feed item counts (for the went-empty check); ``batch_keys``
        groups rows into batches other than one per source (quarantine replay groups by run).
        """
        started = time.perf_counter()
        source_ids = table.column("source_id").to_pylist()
        keys = list(batch_keys) if batch_keys is not None else source_ids
        feeds = feeds or {}
        by_source = {source_id: SourceQuality() for source_id in feeds}
        for source_id, rows in Counter(source_ids).items():
            by_source.setdefault(source_id, SourceQuality()).checked += rows
        # Only failing rows get an entry: a list per row would be one object per row to collect.
        row_failures: dict[int, list[str]] = {}
        warned: set[int] = set()
        results: list[ExpectationResult] = []
        batch_labels: dict[str, list[str]] = {}
        fail_labels: dict[str, list[str]] = {}
        for spec, positions in self._unexpected(self._row_check, self.row_specs, table):
            results.append(_row_result(spec, positions, table, source_ids))
            if spec.severity == "reject":
                for position in positions:
                    row_failures.setdefault(position, []).append(spec.label)
            elif spec.severity == "warn":
                warned.update(positions)
            else:
                for key in dict.fromkeys(keys[position] for position in positions):
                    _add_once(batch_labels.setdefault(key, []), spec.label)
                    _add_once(fail_labels.setdefault(key, []), spec.label)
        summary, source_of = _batch_summary(table, keys, source_ids, feeds, row_failures)
        batch_sources = [source_of[k] for k in summary.column("source_id").to_pylist()]
        for spec, positions in self._unexpected(self._batch_check, self.batch_specs, summary):
            results.append(_batch_result(spec, positions, summary, batch_sources))
            column = spec.kwargs.get("column")
            for position in positions:
                key, source_id = summary.column("source_id")[position].as_py(), batch_sources[position]
                if spec.severity == "warn":
                    observed = summary.column(column)[position].as_py() if column else None
                    detail = f"; got {column}={_short(observed)}" if column else ""
                    _add_once(
                        by_source[source_id].flags, f"expected {spec.description or spec.label}{detail}"
                    )
                    continue
                _add_once(batch_labels.setdefault(key, []), spec.label)
                if spec.severity == "fail":
                    _add_once(fail_labels.setdefault(key, []), spec.label)
        for key, labels in fail_labels.items():
            for label in labels:
                _add_once(by_source[source_of[key]].failed, label)
        # A row is held for its own failures or for its batch's (every fail label is a batch label).
        if batch_labels:
            held = [i for i, key in enumerate(keys) if i in row_failures or key in batch_labels]
        else:
            held = sorted(row_failures)
        failures = [row_failures.get(i, []) + batch_labels.get(keys[i], []) for i in held]
        for position in held:
            by_source[source_ids[position]].rejected += 1
        for position in warned.difference(held):
            by_source[source_ids[position]].warned += 1
        for quality in by_source.values():
            quality.passed = quality.checked - quality.rejected
        held_positions = pa.array(held, pa.int64())
        quarantined = quarantine_rows(table.take(held_positions), failures, stage)
        keep = [True] * table.num_rows
        for position in held:
            keep[position] = False
        accepted = table.filter(pa.array(keep, pa.bool_())) if held else table
        seconds = time.perf_counter() - started
        log.info(
            "validate: %d rows, %d accepted, %d quarantined, %d batches failed, %.2f s",
            table.num_rows,
            accepted.num_rows,
            quarantined.num_rows,
            len(fail_labels),
            seconds,
        )
        return ValidationOutcome(
            accepted,
            quarantined,
            by_source,
            self.suite_name,
            tuple(results),
            seconds,
            tuple(held),
        )

    def _unexpected(
        self, check: tuple[Any, Any], specs: Sequence[ExpectationSpec], table: pa.Table
    ) -> list[tuple[ExpectationSpec, list[int]]]:
        """Every expectation with the positions of the rows that failed it (empty when it passed)."""
        if table.num_rows == 0 or not specs:
            return [(spec, []) for spec in specs]
        definition, suite = check
        frame = table.select(_checked_columns(specs, table.column_names)).to_pandas()
        with self._lock:
            batch = definition.get_batch(batch_parameters={"dataframe": frame})
            # COMPLETE lists every failing row index, not GX's default sample of twenty.
            result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        found: dict[int, list[int]] = {}
        for item in result.results:
            config = item.expectation_config
            if item.success or config is None or config.meta is None:
                continue
            positions = item.result.get("unexpected_index_list")
            if positions is None:
                # An aggregate expectation: no single row is to blame, so every row is.
                positions = list(range(table.num_rows))
            found[int(config.meta["index"])] = [int(p) for p in positions]
        return [(spec, found.get(index, [])) for index, spec in enumerate(specs)]


def _checked_columns(specs: Sequence[ExpectationSpec], available: Sequence[str]) -> list[str]:
    # Only the columns the suite reads are copied to pandas: text bodies are the big ones.
    wanted: set[str] = set()
    for spec in specs:
        for key in ("column", "column_A", "column_B"):
            if isinstance(spec.kwargs.get(key), str):
                wanted.add(spec.kwargs[key])
        wanted.update(c for c in spec.kwargs.get("column_list") or [] if isinstance(c, str))
        condition = spec.kwargs.get("row_condition")
        if isinstance(condition, dict):
            wanted.add(str(condition.get("column")))
        elif isinstance(condition, str):
            wanted.update(_WORD.findall(condition))
    return [c for c in available if c in wanted]


def _batch_summary(
    table: pa.Table,
    keys: Sequence[str],
    source_ids: Sequence[str],
    feeds: Mapping[str, FeedFacts],
    row_failures: Mapping[int, list[str]],
) -> tuple[pa.Table, dict[str, str]]:
    """One row per batch (its size and the shares the batch expectations check), and each batch's source."""
    no_date = pc.is_null(table.column("published_at")).to_pylist()
    summary_text = pc.fill_null(pc.utf8_length(table.column("summary_text")), 0)
    content_text = pc.fill_null(pc.utf8_length(table.column("content_text")), 0)
    no_text = pc.equal(pc.add(summary_text, content_text), 0).to_pylist()
    page_tried, page_failed = _page_outcomes(table)
    tallies: dict[str, list[int]] = {}
    source_of: dict[str, str] = {}
    for key, source_id in zip(keys, source_ids, strict=True):
        source_of.setdefault(key, source_id)
    for source_id in feeds:
        source_of.setdefault(source_id, source_id)
    for key in source_of:
        tallies[key] = [0, 0, 0, 0, 0, 0]
    for position, key in enumerate(keys):
        tally = tallies[key]
        tally[0] += 1
        tally[1] += bool(no_date[position])
        tally[2] += bool(no_text[position])
        tally[3] += position in row_failures
        tally[4] += page_tried[position]
        tally[5] += page_failed[position]
    columns: dict[str, list[Any]] = {name: [] for name in BATCH_SCHEMA.names}
    for key, (rows, dateless, textless, rejected, tried, failed) in tallies.items():
        facts = feeds.get(key) if key == source_of[key] else None
        in_feed = facts.items_in_feed if facts else rows
        last_time = facts.items_last_time if facts else None
        columns["source_id"].append(key)
        columns["rows"].append(rows)
        columns["items_in_feed"].append(in_feed)
        columns["items_last_time"].append(last_time)
        columns["missing_date_share"].append(dateless / rows if rows else None)
        columns["missing_text_share"].append(textless / rows if rows else None)
        columns["rejected_share"].append(rejected / rows if rows else None)
        columns["went_empty"].append(bool(last_time) and in_feed == 0)
        columns["pages_tried"].append(tried)
        columns["pages_failed_share"].append(failed / tried if tried else None)
    return pa.table(columns, schema=BATCH_SCHEMA), source_of


# Page statuses that gave the row its page's body, or that a later poll need not improve on.
_PAGE_FINE = ("ok", "not_modified")


def _page_outcomes(table: pa.Table) -> tuple[list[bool], list[bool]]:
    """Per row: whether a page was tried, and whether it failed to give a body."""
    if "page_status" not in table.column_names:
        return [False] * table.num_rows, [False] * table.num_rows
    status = table.column("page_status")
    tried = pc.and_(pc.is_valid(status), pc.not_equal(status, "skipped"))
    failed = pc.and_(tried, pc.invert(pc.is_in(status, value_set=pa.array(_PAGE_FINE))))
    return pc.fill_null(tried, False).to_pylist(), pc.fill_null(failed, False).to_pylist()


def _row_result(
    spec: ExpectationSpec, positions: Sequence[int], table: pa.Table, source_ids: Sequence[str]
) -> ExpectationResult:
    by_source = dict(Counter(source_ids[p] for p in positions))
    column = spec.kwargs.get("column")
    examples = []
    for position in positions[:EXAMPLES_PER_EXPECTATION]:
        row = {name: table.column(name)[position].as_py() for name in ("source_id", "article_id", "url")}
        value = table.column(column)[position].as_py() if column in table.column_names else None
        examples.append({**{k: _short(v) for k, v in row.items()}, "value": _short(value)})
    return ExpectationResult(spec, len(positions), by_source, tuple(examples))


def _batch_result(
    spec: ExpectationSpec, positions: Sequence[int], summary: pa.Table, batch_sources: Sequence[str]
) -> ExpectationResult:
    by_source = dict(Counter(batch_sources[p] for p in positions))
    column = spec.kwargs.get("column")
    examples = tuple(
        {
            "source_id": batch_sources[p],
            "batch": summary.column("source_id")[p].as_py(),
            "value": _short(summary.column(column)[p].as_py()) if column else None,
        }
        for p in positions[:EXAMPLES_PER_EXPECTATION]
    )
    return ExpectationResult(spec, len(positions), by_source, examples)


def _short(value: object, limit: int = 160) -> str | None:
    if value is None:
        return None
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _add_once(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _expectation_class(gx: Any, type_name: str) -> Any:
    class_name = "".join(part.title() for part in type_name.split("_"))
    expectation_class = getattr(gx.expectations, class_name, None)
    if expectation_class is None:
        raise ConfigError(f"unknown expectation type {type_name!r}")
    return expectation_class


def quarantine_rows(rows: pa.Table, failures: Sequence[list[str]], stage: str) -> pa.Table:
    """Article rows plus the expectations each failed and the stage that held it."""
    failed = pa.array(list(failures), pa.list_(pa.string()))
    stages = pa.array([stage] * rows.num_rows, pa.string())
    table = rows.append_column(QUARANTINE_FIELDS[0], failed).append_column(QUARANTINE_FIELDS[1], stages)
    return table.replace_schema_metadata(rows.schema.metadata)
