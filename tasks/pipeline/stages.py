"""One poll run's stages applied across many sources, each source behind its own boundary.

Each function takes the previous stage's output for every source and returns its own, recording
per source what happened. Every per-source step (state reads, fetch result handling, parse,
normalize, dedup) runs inside ``SourceBoundary``: whatever it raises, a FeedlakeError or any other
exception (kind ``bug``), becomes that source's error and the source leaves the run; the others go
on. Only BaseExceptions that are not Exceptions (KeyboardInterrupt, SystemExit) pass through.
A damaged state object of a source is set aside or rebuilt, and the source gets a warning; a seen
index that cannot be rebuilt now fails its source (it is never read as empty).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

import pyarrow as pa

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.dedup.seen_rows import drop_seen
from feedlake.tasks.errors import DamagedObjectError, FeedlakeError, UnexpectedError, bug_reason
from feedlake.tasks.health.records import SourceHealth
from feedlake.tasks.lake.commit import CommitRecord, commit_run, with_seen_repaired
from feedlake.tasks.lake.lease import confirm_lease
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.source_state import read_source_validators, set_aside
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.pipeline.feed_reading import FeedReading, read_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.validate.validator import FeedFacts, SourceQuality, ValidationOutcome
from feedlake.tasks.values import FeedValidators, FetchResult, SourceReport

log = logging.getLogger(__name__)


class SourceBoundary:
    """``with SourceBoundary(report, stage) as step:`` turns any exception of the block into the
    source's error; ``step.failed`` then tells the caller to drop the source from the run."""

    def __init__(self, report: SourceReport, stage: str) -> None:
        self.report = report
        self.stage = stage
        self.failed = False

    def __enter__(self) -> SourceBoundary:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        self.failed = True
        if not isinstance(exc, FeedlakeError):
            # The one WARNING line per failed source comes from the run; the traceback is for
            # whoever debugs the bug. The source's error names the exception (kind ``bug``).
            log.debug("source %s: bug at %s", self.report.source_id, self.stage, exc_info=exc)
            exc = UnexpectedError(bug_reason(exc), source_id=self.report.source_id)
        self.report.fail(exc, self.stage)
        return True


@dataclass(frozen=True)
class NormalizedSource:
    """A source's rows after normalize and dedup, with the validators to store if committed."""

    source_id: str
    rows: pa.RecordBatch
    validators: FeedValidators | None
    # Items that could not be normalized, as quarantine rows (stage ``normalize``); None: none.
    held: pa.RecordBatch | None = None


def start_reports(sources: Sequence[Source]) -> dict[str, SourceReport]:
    """One empty report per source, in catalog order."""
    return {s.id: SourceReport(s.id) for s in sources}


def normalize_fetched(
    fetched: Sequence[FetchResult],
    sources: Sequence[Source],
    run_id: str,
    reports: dict[str, SourceReport],
    read: Callable[[FetchResult, Source, str], FeedReading] = read_feed,
) -> list[NormalizedSource]:
    """Parse and normalize every fetched body; record errors and 304s in the reports.

    ``read`` parses and normalizes one body: here by default, or in a worker process (``FeedReaders``).
    """
    by_id = {s.id: s for s in sources}
    normalized = []
    for result in fetched:
        report = reports[result.source_id]
        with SourceBoundary(report, "fetch") as step:
            report.http_status = result.status
            if result.moved_to is not None:
                report.moved_to = result.moved_to
                shown = by_id[result.source_id].redact(result.moved_to) if result.source_id in by_id else ""
                report.warnings.append(
                    f"moved permanently to {shown}; polling that from now on (update the sources file)"
                )
            if result.error is not None:
                report.fail(result.error, "fetch")
            elif result.not_modified:
                report.status = "not_modified"
        if step.failed or report.status in ("error", "not_modified"):
            continue
        with SourceBoundary(report, "parse") as step:
            reading = read(result, by_id[result.source_id], run_id)
        if step.failed:
            continue
        if reading.error is not None or reading.feed is None:
            with SourceBoundary(report, reading.failed_stage or "parse"):
                raise reading.error or UnexpectedError("the feed was not read", source_id=report.source_id)
            continue
        feed = reading.feed
        with SourceBoundary(report, "normalize") as step:
            report.warnings.extend(reading.warnings)
            if feed.held is not None:
                report.warnings.append(
                    f"{feed.held.num_rows} item(s) could not be normalized; held in quarantine"
                )
        if step.failed:
            continue
        report.status = "ok"
        report.fetched = feed.rows.num_rows + (0 if feed.held is None else feed.held.num_rows)
        normalized.append(NormalizedSource(result.source_id, feed.rows, result.validators, feed.held))
    return normalized


def read_stored_validators(
    store: ObjectStore, sources: Sequence[Source], reports: dict[str, SourceReport]
) -> dict[str, FeedValidators]:
    """Each source's stored validators; a damaged state object is set aside (the feed is fetched
    in full, with a warning), any other failure fails that source alone."""
    found: dict[str, FeedValidators] = {}
    for source in sources:
        report = reports[source.id]
        with SourceBoundary(report, "state"):
            try:
                value = read_source_validators(store, source.id)
            except DamagedObjectError as exc:
                moved = set_aside(store, exc.key)
                report.warnings.append(f"{exc.reason}; moved to {moved}, fetching the feed in full")
                log.warning("source %s: %s; moved to %s", source.id, exc.reason, moved)
                value = None
            if value is not None:
                found[source.id] = value
    return found


def read_seen_repairing(store: ObjectStore, report: SourceReport, article_ids: pa.Array) -> pa.Array:
    """``read_seen``; each damaged index object met is replaced by its rebuild from the table's keys,
    with a warning on the source. One that cannot be rebuilt now raises DamagedObjectError naming it
    (it stays in place, so the next poll tries again and nothing is deduplicated against a gap)."""

    def warn(exc: DamagedObjectError, copy: str | None, count: int) -> None:
        kept = f"; copied to {copy}" if copy else ""
        report.warnings.append(f"{exc.reason}{kept}; seen index rebuilt from {count} committed row keys")

    return with_seen_repaired(
        store, report.source_id, lambda: read_seen(store, report.source_id, article_ids), on_repair=warn
    )


def drop_duplicates(
    store: ObjectStore, normalized: Sequence[NormalizedSource], reports: dict[str, SourceReport]
) -> list[NormalizedSource]:
    """Drop rows each source's seen index already holds (reading only the buckets of these articles)."""
    kept = []
    for item in normalized:
        report = reports[item.source_id]
        with SourceBoundary(report, "dedup") as step:
            ids = item.rows.column("article_id")
            if item.held is not None:
                ids = pa.concat_arrays([ids, item.held.column("article_id")])
            seen = read_seen_repairing(store, report, ids)
            result = drop_seen(item.rows, seen)
            held = None if item.held is None else drop_seen(item.held, seen)
            # A held item is a row of the run like the others: once committed, it is not held again.
            report.duplicate = result.duplicates + (0 if held is None else held.duplicates)
            new_held = None if held is None or held.new.num_rows == 0 else held.new
        if not step.failed:
            kept.append(NormalizedSource(item.source_id, result.new, item.validators, new_held))
    return kept


def with_held_items(outcome: ValidationOutcome, normalized: Sequence[NormalizedSource]) -> ValidationOutcome:
    """The validation outcome plus the items normalize could not turn into rows, in quarantine."""
    held = [n.held for n in normalized if n.held is not None]
    if not held:
        return outcome
    by_source = dict(outcome.by_source)
    for n in normalized:
        if n.held is not None:
            quality = by_source.get(n.source_id) or SourceQuality()
            by_source[n.source_id] = replace(
                quality,
                checked=quality.checked + n.held.num_rows,
                rejected=quality.rejected + n.held.num_rows,
            )
    tables = [outcome.quarantined, pa.Table.from_batches(held).cast(outcome.quarantined.schema)]
    return replace(outcome, quarantined=pa.concat_tables(tables), by_source=by_source)


def combine_rows(normalized: Sequence[NormalizedSource]) -> pa.Table:
    """All sources' new rows as one table, ready for one validation pass."""
    return pa.Table.from_batches([n.rows for n in normalized], schema=ARTICLE_SCHEMA)


def feed_facts(
    normalized: Sequence[NormalizedSource],
    reports: Mapping[str, SourceReport],
    last_items: Mapping[str, int | None],
) -> dict[str, FeedFacts]:
    """What each parsed feed held this time and last time, for the batch checks."""
    return {
        n.source_id: FeedFacts(reports[n.source_id].fetched, last_items.get(n.source_id)) for n in normalized
    }


def write_and_commit(
    store: ObjectStore,
    run_id: str,
    outcome: ValidationOutcome,
    normalized: Sequence[NormalizedSource],
    reports: dict[str, SourceReport],
    row_group_rows: int,
    lease_seconds: float,
    quality_objects: Sequence[tuple[str, bytes]] = (),
    validation: pa.Table | None = None,
) -> CommitRecord:
    """Write accepted and quarantined rows and commit them with the sources' validators.

    A source whose batch failed a ``fail`` expectation has every new row held in quarantine and
    is reported as failed; its validators are still stored, since its rows are accounted for.
    """
    for source_id, quality in outcome.by_source.items():
        report = reports[source_id]
        report.new, report.rejected, report.warned = quality.passed, quality.rejected, quality.warned
        report.warnings.extend(f"data quality: {flag}" for flag in quality.flags)
        if quality.failed:
            report.status = "error"
            report.error_kind = "quality"
            report.error = f"batch held in quarantine: failed {', '.join(quality.failed)}"
    files = plan_run_files(outcome.accepted, outcome.quarantined, row_group_rows)
    committed_rows = run_keys(outcome.accepted, outcome.quarantined)
    validators = {n.source_id: n.validators for n in normalized if n.validators is not None}
    # A run that lost its lease (it stalled past the expiry) must not commit over its successor.
    confirm_lease(store, run_id, lease_seconds)
    return commit_run(
        store, run_id, files, committed_rows, validators, reports=quality_objects, validation=validation
    )


def redact_reports(reports: Mapping[str, SourceReport], sources: Sequence[Source]) -> None:
    """Hide every placeholder value (a secret) in the reports' errors and warnings before they are shown."""
    by_id = {s.id: s for s in sources}
    for report in reports.values():
        source = by_id.get(report.source_id)
        if source is None or not source.substitutions:
            continue
        if report.error:
            report.error = source.redact(report.error)
        report.warnings = [source.redact(warning) for warning in report.warnings]


def mark_backing_off(
    reports: Mapping[str, SourceReport], waiting: Iterable[Source], health: Mapping[str, SourceHealth]
) -> None:
    """Report each source still backing off, with when it is next tried and why it failed."""
    for source in waiting:
        record = health[source.id]
        report = reports[source.id]
        report.status = "backing_off"
        report.error_kind = record.last_error_kind
        report.error = (
            f"{record.consecutive_failures} failures in a row; next try after {record.next_due_at} "
            f"(last: {record.last_error})"
        )
