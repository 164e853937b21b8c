"""The one wiring of a poll: fetch -> parse/normalize -> dedup -> validate -> write/commit.

Every caller runs a poll through ``run_poll``: the ``feedlake poll`` flow and ``feedlake serve``'s
deployments (with Prefect hooks: tasks, retries, artifacts, events), a WebSub push (its documents in
place of fetches), ``feedlake.poll`` for library users, the benchmarks and the tests (plain hooks).
The stages themselves live in their folders; ``pipeline/stages.py`` applies each across sources,
each source behind its own boundary. The whole run holds the lake in one ``lake_transaction``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from feedlake.schemas.article import quarantine_schema
from feedlake.tasks.errors import DamagedObjectError, FeedlakeError
from feedlake.tasks.health.records import (
    HEALTH_COLUMNS,
    fetch_targets,
    health_rows,
    read_health,
    split_due,
    updated_health,
    write_health,
)
from feedlake.tasks.lake.layout import ARTICLES, new_run_id, raw_capture_key, validation_key
from feedlake.tasks.lake.page_retries import (
    PAGES,
    RETRY_SCHEMA,
    page_retries_object,
    prune_page_retries,
    read_page_retries,
)
from feedlake.tasks.lake.raw_capture import warc_bytes
from feedlake.tasks.lake.source_state import set_aside
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.pipeline.full_text import add_full_text, feed_exchange, fetch_sources, settled_retries
from feedlake.tasks.pipeline.hooks import PipelineHooks
from feedlake.tasks.pipeline.stages import (
    NormalizedSource,
    SourceBoundary,
    combine_rows,
    drop_duplicates,
    feed_facts,
    mark_backing_off,
    normalize_fetched,
    read_stored_validators,
    redact_reports,
    start_reports,
    with_held_items,
    write_and_commit,
)
from feedlake.tasks.pipeline.summary import RunSummary, format_markdown, markdown_table
from feedlake.tasks.quality.report import quality_markdown, quality_objects, validation_document
from feedlake.tasks.quality.results_table import validation_rows
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source, load_sources
from feedlake.tasks.validate.suite import DEFAULT_SUITE, load_suite
from feedlake.tasks.validate.validator import (
    FeedFacts,
    ValidationOutcome,
    preload_great_expectations,
    validator_for,
)
from feedlake.tasks.values import FeedValidators, FetchResult, SourceReport


def run_poll(
    settings: FeedlakeSettings,
    variables: Mapping[str, str] | None = None,
    interval: int | None = None,
    pushed: Mapping[str, FetchResult] | None = None,
    hooks: PipelineHooks | None = None,
    store: ObjectStore | None = None,
) -> RunSummary:
    """Poll the enabled sources of ``settings.sources`` once into ``settings.lake``; the run's summary.

    ``interval`` keeps only the sources polled every ``interval`` seconds (a scheduled group);
    ``pushed`` holds documents a WebSub hub pushed: those sources are ingested from them, unfetched.
    ``store`` replaces the store ``settings.lake`` names (a wrapped one, in benchmarks).
    """
    hooks = hooks or PipelineHooks()
    environment = dict(os.environ) if variables is None else dict(variables)
    catalog = [s for s in load_sources(settings.sources, environment) if s.enabled]
    if interval is not None:
        default = settings.default_poll_interval_seconds
        catalog = [s for s in catalog if (s.poll_interval_seconds or default) == interval]
    if pushed is not None:
        catalog = [s for s in catalog if s.id in pushed]
    store = store or open_store(settings.lake, settings)
    run_id = new_run_id()
    with lake_transaction(store, run_id, settings.lease_seconds, settings.lease_wait_seconds) as recovered:
        for action in recovered:
            hooks.logger.warning("recovered the lake first: %s", action)
        summary = _poll_under_lease(store, settings, catalog, run_id, recovered, hooks, pushed)
    hooks.publish("feedlake-poll-summary", format_markdown(summary), "Poll summary")
    return summary


def validate_rows(
    normalized: list[NormalizedSource], feeds: dict[str, FeedFacts], suite: str | None
) -> ValidationOutcome:
    """Build the suite once for this run and validate every source's new rows in one pass."""
    suite_path = Path(suite) if suite else DEFAULT_SUITE
    if not normalized:
        # No feed was parsed (all 304s or failures): no row and no batch to check, so the run is
        # spared Great Expectations' import, seconds of CPU. The suite file is still checked. The
        # empty tables come from schemas alone: pa.array() over Python lists would import pandas.
        rows = combine_rows(normalized)
        held = pa.Table.from_batches([], schema=quarantine_schema(rows.schema))
        return ValidationOutcome(rows, held, {}, load_suite(suite_path).name)
    return validator_for(suite_path).validate(combine_rows(normalized), feeds)


def validate_sources(
    normalized: list[NormalizedSource],
    feeds: dict[str, FeedFacts],
    suite: str | None,
    reports: dict[str, SourceReport],
) -> tuple[ValidationOutcome, list[NormalizedSource]]:
    """Validate every source's rows in one pass; the outcome and the sources it covers.

    Should that pass raise something other than a FeedlakeError (a bad suite is one, and stops
    the run), each source is validated alone to find the ones that raise: they fail as ``bug``
    and the rest are validated again together. Only a failing run pays for the extra passes.
    """
    try:
        return with_held_items(validate_rows(normalized, feeds, suite), normalized), normalized
    except FeedlakeError:
        raise
    except Exception:  # noqa: BLE001 - isolate the source that broke the batch
        kept = []
        for item in normalized:
            with SourceBoundary(reports[item.source_id], "validate") as step:
                validate_rows([item], {item.source_id: feeds[item.source_id]}, suite)
            if not step.failed:
                kept.append(item)
        return with_held_items(validate_rows(kept, feeds, suite), kept), kept


def read_retries_or_start_afresh(store: ObjectStore, warnings: list[str], logger: Any) -> pa.Table:
    """The rows waiting for a page retry; a damaged list is set aside with a warning (those pages
    are not retried: their rows keep the feed's text, which they already have)."""
    try:
        return read_page_retries(store)
    except DamagedObjectError as exc:
        if not exc.key.startswith(f"{PAGES}/"):  # only a list is ours to set aside
            raise
        moved = set_aside(store, exc.key)
        warnings.append(f"{exc.reason}; moved to {moved}, no earlier page is retried")
        logger.warning("%s", warnings[-1])
        return RETRY_SCHEMA.empty_table()


def commit_delays(settings: FeedlakeSettings) -> list[float]:
    """Delays between commit retries: the backoff base, then 4x, 16x, ..."""
    return [settings.backoff_seconds * 4**i for i in range(settings.commit_retries)]


def _poll_under_lease(
    store: ObjectStore,
    settings: FeedlakeSettings,
    catalog: list[Source],
    run_id: str,
    recovered: list[str],
    hooks: PipelineHooks,
    pushed: Mapping[str, FetchResult] | None = None,
) -> RunSummary:
    logger = hooks.logger
    reports = start_reports(catalog)
    clock = time.perf_counter()
    started = datetime.now(UTC)
    lake_warnings: list[str] = []
    try:
        health = read_health(store)
    except DamagedObjectError as exc:
        # Health only times retries: a fresh start polls every source now, and loses no data.
        moved = set_aside(store, exc.key)
        lake_warnings.append(f"{exc.reason}; moved to {moved}, every source's health starts afresh")
        logger.warning("%s", lake_warnings[-1])
        health = {}
    # A pushed document is ingested even for a source still backing off: it has fresh content.
    due, waiting = split_due(catalog, health, started) if pushed is None else (list(catalog), [])
    mark_backing_off(reports, waiting, health)
    validators = read_stored_validators(store, due, reports)
    # A source whose state could not be read has failed already: it is not fetched.
    due_now = [s for s in due if reports[s.id].status != "error"]
    by_id = {s.id: s for s in catalog}
    fetched = None
    if pushed is None:
        targets = fetch_targets(due_now, health)
        retries = read_retries_or_start_afresh(store, lake_warnings, logger)
        fetch_stage = hooks.stage("fetch-parse-dedup-pages", fetch_sources)
        fetched = fetch_stage(targets, validators, settings, due_now, run_id, reports, store, retries)
        normalized, unique, exchanges = fetched.normalized, fetched.new, fetched.exchanges
    else:
        preload_great_expectations()
        # A pushed document carries no HTTP validators: keep the ones polls stored.
        documents = [
            replace(pushed[s.id], validators=validators.get(s.id, FeedValidators())) for s in due_now
        ]
        normalized = hooks.stage("parse-normalize", normalize_fetched)(documents, due_now, run_id, reports)
        unique = hooks.stage("dedup", drop_duplicates)(store, normalized, reports)
        # New items only: a page is fetched once per new version of an item, never for a duplicate.
        unique, exchanges = hooks.stage("full-text", add_full_text)(unique, by_id, settings, reports)
        exchanges += [feed_exchange(d, by_id[d.source_id]) for d in documents if d.body is not None]
    logger.info("parsed %d of %d due sources (%d backing off)", len(normalized), len(due), len(waiting))
    # The capture is compressed in a thread while the rows are validated: zlib lets go of the GIL,
    # and by now the extraction workers are done with the other core.
    capturing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedlake-capture")
    capture = capturing.submit(warc_bytes, exchanges, run_id) if exchanges else None
    capturing.shutdown(wait=False)
    last_items = {source_id: record.last_items for source_id, record in health.items()}
    validate_started = time.perf_counter()
    facts = feed_facts(normalized, reports, last_items)
    outcome, unique = hooks.stage("validate", validate_sources)(unique, facts, settings.suite, reports)
    # The whole stage: GX import and context build included, not just the suite pass.
    validate_seconds = time.perf_counter() - validate_started
    # The page retry list, once it is known which sources commit rows (pushes leave it alone).
    retries = None
    if fetched is not None:
        failed = {s for s, r in reports.items() if r.status == "error"}
        retries = settled_retries(fetched, failed | {s for s, q in outcome.by_source.items() if q.failed})
    extra_objects = [page_retries_object(run_id, retries)] if retries is not None else []
    # Before anything shows or stores them (validation record, events, health, the summary); what the
    # commit adds later to the reports (quality flags) quotes no URL.
    redact_reports(reports, catalog)
    # Sources that checked nothing because they failed before validation: the charts count them.
    unreachable = {
        r.source_id: r.error or "failed"
        for r in reports.values()
        if r.status == "error" and r.error_kind != "quality"
    }
    quality = validation_document(outcome, run_id, "poll", unreachable)
    quality_files = quality_objects(quality, store.uri())
    # The feeds' and pages' raw responses, committed with the run (and rolled back with it).
    raw = [(raw_capture_key(run_id), capture.result())] if capture is not None else []
    committer = hooks.stage(
        "write-commit", write_and_commit, settings.commit_retries, commit_delays(settings)
    )
    record = committer(
        store,
        run_id,
        outcome,
        unique,
        reports,
        settings.row_group_rows,
        settings.lease_seconds,
        [*quality_files, *raw, *extra_objects],
        validation_rows(quality),
    )
    if extra_objects:
        try:
            prune_page_retries(store, run_id)
        except FeedlakeError as exc:  # the list is committed; older ones only take room
            logger.warning("could not prune older page retry lists: %s", exc)
    if quality_files:
        hooks.publish("feedlake-data-quality", quality_markdown(quality), "Data quality per source")
    try:
        hooks.committed(store.uri(), record, reports.values())
    except Exception as exc:  # noqa: BLE001 - the data is committed; health must still be written
        logger.warning("could not emit the poll's events: %s: %s", type(exc).__name__, exc)
    changed = updated_health(
        health,
        due,
        reports.values(),
        started,
        settings.failure_backoff_seconds,
        settings.failure_backoff_cap_seconds,
    )
    try:
        write_health(store, {s.id: changed[s.id] for s in due if s.id in changed})
    except FeedlakeError as exc:  # the data is committed; stale health only delays a retry
        logger.warning("could not update source health: %s", exc)
    hooks.publish(
        "feedlake-source-health",
        markdown_table(HEALTH_COLUMNS, health_rows(changed)),
        "Source health after this poll",
    )
    summary = RunSummary(
        run_id=run_id,
        lake=store.uri(),
        reports=tuple(reports.values()),
        files_written=len(record.files),
        rows_committed=outcome.accepted.num_rows,
        rows_quarantined=outcome.quarantined.num_rows,
        table_version=record.table_versions.get(ARTICLES),
        recovered=tuple(recovered),
        validate_seconds=validate_seconds,
        run_seconds=time.perf_counter() - clock,
        quality_report=store.uri(validation_key(run_id, "html")) if quality_files else None,
        warnings=tuple(lake_warnings),
    )
    for report in reports.values():
        if report.status == "error":
            # Once per failed source and run, whatever Prefect retried on the way.
            logger.warning(
                "source %s failed (%s): %s", report.source_id, report.stage or report.error_kind, report.error
            )
    logger.info(
        "run %s: %d rows committed, %d quarantined, %d files, %d of %d sources failed",
        run_id,
        summary.rows_committed,
        summary.rows_quarantined,
        summary.files_written,
        summary.sources_failed,
        len(catalog),
    )
    return summary
