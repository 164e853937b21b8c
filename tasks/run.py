"""One poll run's stages applied across many sources, with per-source error capture.

Each function takes the previous stage's output for every source and returns its own, recording
per source what happened. A broken source is recorded and skipped; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from schemas.article import ARTICLE_SCHEMA
from tasks.commit import CommitRecord, commit_run
from tasks.dedup import drop_seen
from tasks.errors import FeedlakeError
from tasks.fetch import FeedValidators, FetchResult
from tasks.lake_layout import ARTICLES, QUARANTINE
from tasks.lease import confirm_lease
from tasks.normalize import normalize_feed
from tasks.parse import parse_feed
from tasks.sources import Source
from tasks.state import read_seen
from tasks.storage import ObjectStore
from tasks.validate import FeedFacts, ValidationOutcome
from tasks.write import plan_files

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """What one source did in one run; the poll summary has one of these per source."""

    source_id: str
    status: str = "pending"
    http_status: int | None = None
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    rejected: int = 0
    warned: int = 0
    error: str | None = None
    error_kind: str | None = None
    moved_to: str | None = None
    warnings: list[str] = field(default_factory=list)

    def fail(self, error: FeedlakeError) -> None:
        """Record a terminal problem for this source."""
        self.status = "error"
        # The source is this report's key already; the reason is what a reader needs.
        self.error = error.reason if error.url is None else f"{error.reason} ({error.url})"
        self.error_kind = error.kind


@dataclass(frozen=True)
class NormalizedSource:
    """A source's rows after normalize and dedup, with the validators to store if committed."""

    source_id: str
    rows: pa.RecordBatch
    validators: FeedValidators | None


def start_reports(sources: Sequence[Source]) -> dict[str, SourceReport]:
    """One empty report per source, in catalog order."""
    return {s.id: SourceReport(s.id) for s in sources}


def normalize_fetched(
    fetched: Sequence[FetchResult],
    sources: Sequence[Source],
    run_id: str,
    reports: dict[str, SourceReport],
) -> list[NormalizedSource]:
    """Parse and normalize every fetched body; record errors and 304s in the reports."""
    by_id = {s.id: s for s in sources}
    normalized = []
    for result in fetched:
        report = reports[result.source_id]
        report.http_status = result.status
        if result.moved_to is not None:
            report.moved_to = result.moved_to
            report.warnings.append(
                f"moved permanently to {result.moved_to}; polling that from now on (update the sources file)"
            )
        if result.error is not None:
            report.fail(result.error)
            continue
        if result.not_modified:
            report.status = "not_modified"
            continue
        try:
            parsed = parse_feed(result)
            batch = normalize_feed(parsed, by_id[result.source_id], run_id)
        except FeedlakeError as exc:
            report.fail(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - one feed's surprise must not stop the run
            log.exception("unexpected error normalizing source %s", result.source_id)
            report.status, report.error, report.error_kind = "error", f"{type(exc).__name__}: {exc}", "bug"
            continue
        report.status = "ok"
        report.fetched = batch.num_rows
        report.warnings.extend(parsed.warnings)
        normalized.append(NormalizedSource(result.source_id, batch, result.validators))
    return normalized


def drop_duplicates(
    store: ObjectStore, normalized: Sequence[NormalizedSource], reports: dict[str, SourceReport]
) -> list[NormalizedSource]:
    """Drop rows each source's seen index already holds (reading only the buckets of these articles)."""
    kept = []
    for item in normalized:
        seen = read_seen(store, item.source_id, item.rows.column("article_id"))
        result = drop_seen(item.rows, seen)
        reports[item.source_id].duplicate = result.duplicates
        kept.append(NormalizedSource(item.source_id, result.new, item.validators))
    return kept


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
    files = [(ARTICLES, f) for f in plan_files(outcome.accepted, ARTICLES, row_group_rows)]
    files += [(QUARANTINE, f) for f in plan_files(outcome.quarantined, QUARANTINE, row_group_rows)]
    committed_rows = pa.concat_tables(
        [
            outcome.accepted.select(["source_id", "article_id", "content_hash"]),
            outcome.quarantined.select(["source_id", "article_id", "content_hash"]),
        ]
    )
    validators = {n.source_id: n.validators for n in normalized if n.validators is not None}
    # A run that lost its lease (it stalled past the expiry) must not commit over its successor.
    confirm_lease(store, run_id, lease_seconds)
    return commit_run(store, run_id, files, committed_rows, validators, reports=quality_objects)
