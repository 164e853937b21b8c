"""Re-extraction: article bodies extracted again from the lake's raw capture, without fetching.

For every page the raw capture holds (the latest capture of each article, ``status 200``), the
current row of that article is read from the table, the body is extracted again (the extractor of
today, with the row's title and the feed's own text as the teaser), and a row whose body changed is
written as a new version: same ``article_id`` and ``content_hash`` (the feed's version is the same),
a new ``run_id``, validated and committed like any run. Readers take the latest version per article
(``infra/sql``: by captured_at, fetched_at, run_id). A rerun finds the bodies already current and
writes nothing: re-extraction is idempotent, and a crash at any write is recovered like a poll's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.full_text.extract import ExtractionJob, PageArticle, extract_articles
from feedlake.tasks.full_text.stage import feed_text, use_page_body
from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.delta_table import read_rows
from feedlake.tasks.lake.layout import ARTICLES, new_run_id
from feedlake.tasks.lake.raw_capture import RawExchange, iter_raw_captures
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.lake.write import plan_run_files, run_keys
from feedlake.tasks.quality.report import quality_objects, validation_document
from feedlake.tasks.quality.results_table import validation_rows
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from feedlake.tasks.validate.validator import validator_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReextractResult:
    """What a re-extraction did: pages read, rows rewritten, and the run that committed them."""

    run_id: str
    pages: int
    changed: int
    unchanged: int
    without_row: int
    quarantined: int


def run_reextract(
    settings: FeedlakeSettings,
    source_id: str | None = None,
    since: date | None = None,
    processes: int | None = None,
) -> ReextractResult:
    """Extract every captured page of the lake again and commit the rows whose body changed."""
    store = open_store(settings.lake, settings)
    run_id = new_run_id()
    pages = latest_pages(store, source_id, since)
    rows = current_rows(store, {key[1] for key in pages}, source_id)
    jobs, order = [], []
    for key, exchange in pages.items():
        row = rows.get(key)
        if row is not None:
            jobs.append(_job(exchange, row))
            order.append(key)
    workers = processes or settings.extract_processes or 1
    articles = extract_articles(jobs, workers) if jobs else []
    changed = [
        new
        for key, article in zip(order, articles, strict=True)
        if (new := rewritten(rows[key], article, run_id)) is not None
    ]
    result = ReextractResult(
        run_id, len(pages), len(changed), len(order) - len(changed), len(pages) - len(order), 0
    )
    if not changed:
        return result
    table = pa.Table.from_pylist(changed, schema=ARTICLE_SCHEMA)
    outcome = validator_for(Path(settings.suite) if settings.suite else DEFAULT_SUITE).validate(table)
    with lake_transaction(store, run_id, settings.lease_seconds, settings.lease_wait_seconds):
        files = plan_run_files(outcome.accepted, outcome.quarantined, settings.row_group_rows)
        document = validation_document(outcome, run_id, "reextract")
        keys = run_keys(outcome.accepted, outcome.quarantined)
        commit_run(
            store,
            run_id,
            files,
            keys,
            {},
            kind="reextract",
            reports=quality_objects(document, store.uri()),
            validation=validation_rows(document),
        )
    log.info("reextract %s: %d pages, %d rows rewritten", run_id, len(pages), len(changed))
    return ReextractResult(
        run_id,
        len(pages),
        outcome.accepted.num_rows,
        result.unchanged,
        result.without_row,
        outcome.quarantined.num_rows,
    )


def latest_pages(
    store: ObjectStore, source_id: str | None, since: date | None
) -> dict[tuple[str, str], RawExchange]:
    """(source_id, article_id) -> the latest captured 200 response of that article's page."""
    found: dict[tuple[str, str], RawExchange] = {}
    for _, exchange in iter_raw_captures(store, since=since, source_id=source_id, kind="page"):
        if exchange.status == 200 and exchange.article_id and exchange.body:
            found[(exchange.source_id, exchange.article_id)] = exchange
    return found


def current_rows(
    store: ObjectStore, article_ids: set[str], source_id: str | None
) -> dict[tuple[str, str], dict[str, object]]:
    """The latest version of each article in ``article_ids`` (by captured_at, fetched_at, run_id)."""
    if not article_ids:
        return {}
    wanted = pa.array(sorted(article_ids), pa.string())
    table = read_rows(store, ARTICLES, ARTICLE_SCHEMA, source_id=source_id)
    table = table.filter(pc.is_in(table.column("article_id"), value_set=wanted))
    latest: dict[tuple[str, str], dict[str, object]] = {}
    for row in table.to_pylist():
        key = (str(row["source_id"]), str(row["article_id"]))
        rank = (row["captured_at"], row["fetched_at"], row["run_id"])
        held = latest.get(key)
        if held is None or rank > (held["captured_at"], held["fetched_at"], held["run_id"]):
            latest[key] = row
    return latest


def rewritten(row: dict[str, object], article: PageArticle, run_id: str) -> dict[str, object] | None:
    """A new version of ``row`` with the re-extracted body, or None when the body is the same."""
    if article.text == row["content_text"]:
        return None
    new = dict(row)
    if not use_page_body(new, article):
        return None
    new.update(run_id=run_id, page_status="ok")
    return new


def _job(exchange: RawExchange, row: dict[str, object]) -> ExtractionJob:
    headers = {name.lower(): value for name, value in exchange.response_headers.items()}
    return ExtractionJob(
        page=exchange.body,
        url=exchange.url,
        content_type=headers.get("content-type"),
        title=str(row["title"]) if row["title"] is not None else None,
        teaser=feed_text(row),
    )
