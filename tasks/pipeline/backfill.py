"""The one wiring of a backfill: pick a strategy, resume the checkpoint, and run the engine.

A backfill reads one source's history (archive pages, paged feeds, the Wayback Machine, or a folder
of captured documents and WARC files) through the poll's normalize / dedup / validate / commit
stages (``backfill/engine.py``), in committed, resumable batches. The ``feedlake backfill`` flow and
``feedlake.backfill`` both call ``run_source_backfill``; the flow adds a progress bar, Prefect tasks
and an artifact through the hooks and ``progress``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.backfill.captures import (
    STRATEGIES,
    Capture,
    archive_captures,
    choose_strategy,
    file_captures,
    http_fetcher,
    paged_captures,
    wayback_captures,
)
from feedlake.tasks.backfill.engine import (
    BackfillResult,
    BatchCommit,
    Checkpoint,
    Normalizer,
    Progress,
    run_backfill,
    start_or_resume,
)
from feedlake.tasks.dedup.seen_rows import drop_seen_versions
from feedlake.tasks.errors import ConfigError
from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.layout import new_run_id, raw_capture_key
from feedlake.tasks.lake.raw_capture import RawExchange, warc_bytes
from feedlake.tasks.lake.seen_index import read_seen
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.pipeline.full_text import add_full_text
from feedlake.tasks.pipeline.hooks import PipelineHooks
from feedlake.tasks.pipeline.poll import commit_delays
from feedlake.tasks.pipeline.stages import NormalizedSource
from feedlake.tasks.quality.report import quality_objects, validation_document
from feedlake.tasks.quality.results_table import validation_rows
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source, load_sources
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from feedlake.tasks.validate.validator import ArticleValidator, preload_great_expectations, validator_for
from feedlake.tasks.values import SourceReport

ProgressFactory = Callable[[str, "int | None", Checkpoint, bool], Progress | None]
# A batch's new rows -> the rows with their article pages, and the pages' raw responses.
PageAdder = Callable[[pa.Table], tuple[pa.Table, list[RawExchange]]]

log = logging.getLogger(__name__)


def run_source_backfill(
    settings: FeedlakeSettings,
    source_id: str,
    *,
    since: date | None = None,
    until: date | None = None,
    strategy: str = "auto",
    path: Path | None = None,
    workers: int | None = None,
    hooks: PipelineHooks | None = None,
    progress: ProgressFactory | None = None,
    normalizer: Callable[[Source, int, int], Normalizer] | None = None,
    variables: Mapping[str, str] | None = None,
) -> BackfillResult:
    """Backfill one source's history into ``settings.lake``, resuming its checkpoint if it has one.

    ``progress`` builds the progress callback once the total is known (and whether it resumes);
    ``normalizer`` replaces the local worker processes (a Dask cluster under Prefect).
    """
    hooks = hooks or PipelineHooks()
    target = find_source(settings, source_id, variables)
    store = open_store(settings.lake, settings)
    preload_great_expectations()
    fetch = http_fetcher(settings, target)
    if strategy == "auto":
        strategy, reason = choose_strategy(fetch, target.url, path)
        hooks.logger.info("backfill %s: strategy %s: %s", target.id, strategy, reason)
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown backfill strategy {strategy!r}; use auto or one of {', '.join(STRATEGIES)}"
        )
    checkpoint, resumed = start_or_resume(store, target.id, strategy)
    if resumed:
        hooks.logger.warning(
            "resuming the %s backfill of %s from its checkpoint: %d documents and %d rows already committed",
            strategy,
            target.id,
            checkpoint.captures,
            checkpoint.rows_written,
        )
    total, captures = find_captures(strategy, fetch, settings, target, path, checkpoint.cursor, since, until)
    validator = validator_for(Path(settings.suite) if settings.suite else DEFAULT_SUITE)
    adder = None if target.full_text == "never" else partial(backfill_pages, target, settings)

    def commit_with_pages(
        store: ObjectStore,
        rows: pa.Table,
        validator: ArticleValidator,
        lease: float,
        wait: float,
        groups: int,
    ) -> BatchCommit:
        return commit_backfill_batch(store, rows, validator, lease, wait, groups, pages=adder)

    delays = commit_delays(settings)
    commit = hooks.stage("backfill-commit", commit_with_pages, settings.commit_retries, delays)
    processes = workers or settings.backfill_workers or os.cpu_count() or 1
    return run_backfill(
        store,
        target,
        captures,
        checkpoint,
        validator=validator,
        commit=commit,
        lease_seconds=settings.lease_seconds,
        lease_wait_seconds=settings.lease_wait_seconds,
        row_group_rows=settings.row_group_rows,
        workers=processes,
        batch_rows=settings.backfill_batch_rows,
        since=since,
        until=until,
        progress=progress(target.id, total, checkpoint, resumed) if progress else None,
        resumed=resumed,
        normalizer=normalizer(target, processes, settings.backfill_batch_rows) if normalizer else None,
    )


def find_source(
    settings: FeedlakeSettings, source_id: str, variables: Mapping[str, str] | None = None
) -> Source:
    """The source ``source_id`` of the sources file; ConfigError if it has none by that id."""
    catalog = load_sources(settings.sources, dict(os.environ) if variables is None else dict(variables))
    for candidate in catalog:
        if candidate.id == source_id:
            return candidate
    raise ConfigError(f"source {source_id!r} is not in {settings.sources}")


def find_captures(
    strategy: str,
    fetch: Any,
    settings: FeedlakeSettings,
    source: Source,
    folder: Path | None,
    cursor: str | None,
    since: date | None,
    until: date | None,
) -> tuple[int | None, Iterator[Capture]]:
    """How many documents the strategy will yield (None if unknown), and the documents."""
    if strategy == "archive":
        return None, archive_captures(fetch, source.url, cursor, settings.backfill_max_pages)
    if strategy == "paged":
        return None, paged_captures(fetch, source.url, cursor, settings.backfill_max_pages)
    if strategy == "wayback":
        return wayback_captures(fetch, settings.wayback_url, source.url, since, until)
    if folder is None:
        raise ConfigError("the files strategy needs --path (a folder of feed documents or WARC files)")
    return file_captures(folder, source.url)


def commit_backfill_batch(
    store: ObjectStore,
    rows: pa.Table,
    validator: ArticleValidator,
    lease_seconds: float,
    lease_wait_seconds: float,
    row_group_rows: int,
    pages: PageAdder | None = None,
) -> BatchCommit:
    """Dedup, validate, write and commit one batch under the lake's lease (held for this batch only).

    With ``pages`` (the source's ``full_text`` is not ``never``), the new versions get their article
    pages first, before the lease is taken: fetching them can take minutes, and the lake stays free
    meanwhile. Under the lease the batch is deduplicated again (another writer may have committed
    some of it since), and the pages' responses are committed as the batch's raw capture.
    """
    run_id = new_run_id()
    rows = rows.set_column(
        rows.schema.get_field_index("run_id"),
        ARTICLE_SCHEMA.field("run_id"),
        pa.array([run_id] * rows.num_rows, pa.string()),
    )
    raw: list[tuple[str, bytes]] = []
    seen_before = 0  # duplicates dropped before the pages were fetched
    if pages is not None:
        fresh = unseen_versions(store, rows)
        seen_before = rows.num_rows - fresh.num_rows
        if fresh.num_rows == 0:
            return BatchCommit(run_id, 0, 0, seen_before)
        rows, exchanges = pages(fresh)
        raw = [(raw_capture_key(run_id), warc_bytes(exchanges, run_id))] if exchanges else []
    with lake_transaction(store, run_id, lease_seconds, lease_wait_seconds):
        new = unseen_versions(store, rows)
        duplicates = seen_before + rows.num_rows - new.num_rows
        if new.num_rows == 0:
            return BatchCommit(run_id, 0, 0, duplicates)
        outcome = validator.validate(new)
        files = plan_run_files(outcome.accepted, outcome.quarantined, row_group_rows)
        keys = run_keys(outcome.accepted, outcome.quarantined)
        document = validation_document(outcome, run_id, "backfill")
        reports = [*quality_objects(document, store.uri()), *raw]
        commit_run(
            store,
            run_id,
            files,
            keys,
            {},
            kind="backfill",
            reports=reports,
            validation=validation_rows(document),
        )
        return BatchCommit(run_id, outcome.accepted.num_rows, outcome.quarantined.num_rows, duplicates)


def backfill_pages(
    source: Source, settings: FeedlakeSettings, rows: pa.Table
) -> tuple[pa.Table, list[RawExchange]]:
    """A backfill batch's new rows with their pages (the poll's full-text stage), and the responses."""
    batch = rows.combine_chunks().to_batches()[0]
    report = SourceReport(source.id)
    done, exchanges = add_full_text(
        [NormalizedSource(source.id, batch, None)], {source.id: source}, settings, {source.id: report}
    )
    for warning in report.warnings:
        log.warning("backfill %s: %s", source.id, warning)
    return (pa.Table.from_batches([done[0].rows]) if done else rows), exchanges


def unseen_versions(store: ObjectStore, rows: pa.Table) -> pa.Table:
    """Each source's rows whose version the lake does not hold yet (``drop_seen_versions``)."""
    kept = []
    for source_id in pc.unique(rows.column("source_id")).to_pylist():
        part = rows.filter(pc.equal(rows.column("source_id"), source_id))
        kept.append(drop_seen_versions(part, read_seen(store, source_id, part.column("article_id"))))
    return pa.concat_tables(kept) if kept else rows.slice(0, 0)
