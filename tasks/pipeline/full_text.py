"""The full-text stage across a run's sources: page requests, one fetch of them all, extraction, rows."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pyarrow.compute as pc

from feedlake.tasks.fetch.pages import PageResult, fetch_pages
from feedlake.tasks.fetch.robots import RobotsCache
from feedlake.tasks.full_text.extract import ExtractionJob, extract_articles
from feedlake.tasks.full_text.stage import PageOutcome, PagePlan, page_plans, with_pages
from feedlake.tasks.lake.raw_capture import RawExchange
from feedlake.tasks.pipeline.stages import NormalizedSource, SourceBoundary
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import SourceReport


def add_full_text(
    normalized: Sequence[NormalizedSource],
    sources: Mapping[str, Source],
    settings: FeedlakeSettings,
    reports: dict[str, SourceReport],
) -> tuple[list[NormalizedSource], list[RawExchange]]:
    """Fetch and extract the pages of new teaser items; every source's rows get their page columns.

    Pages of all sources are fetched together (the per-host gate keeps each site's pace) and
    extracted in worker processes. A page that fails costs its row nothing: the row keeps the
    feed's text and says why in ``page_status``. Returns the rows and the raw page exchanges.
    """
    plans: dict[tuple[str, str], PagePlan] = {}
    planned = []
    for item in normalized:
        with SourceBoundary(reports[item.source_id], "full_text") as step:
            wanted = page_plans(item.rows, sources[item.source_id].full_text)
        if not step.failed:  # a source that failed here leaves the run, as at every stage
            plans.update(((p.request.source_id, p.request.article_id), p) for p in wanted)
            planned.append(item)
    requests = [plan.request for plan in plans.values()]
    results = fetch_pages(requests, settings, robots=RobotsCache(settings)) if requests else []
    fetched = [r for r in results if r.status == "ok" and r.body is not None]
    jobs = [_extraction_job(r, plans[(r.request.source_id, r.request.article_id)]) for r in fetched]
    processes = settings.extract_processes or os.cpu_count() or 1
    extracted = dict(zip((id(r) for r in fetched), extract_articles(jobs, processes), strict=True))
    outcomes: dict[str, dict[str, PageOutcome]] = defaultdict(dict)
    for result in results:
        outcome = PageOutcome(result, extracted.get(id(result)))
        outcomes[result.request.source_id][result.request.article_id] = outcome
    done = []
    for item in planned:
        report = reports[item.source_id]
        with SourceBoundary(report, "full_text") as step:
            rows = with_pages(item.rows, outcomes[item.source_id])
            report.pages_tried = len(outcomes[item.source_id])
            report.pages_used = pc.sum(pc.equal(rows.column("content_source"), "page")).as_py() or 0
            failed = Counter(
                o.article.status if o.article is not None else o.result.status
                for o in outcomes[item.source_id].values()
                if o.article is None or o.article.status != "ok"
            )
            if failed:
                tried = len(outcomes[item.source_id])
                reasons = ", ".join(f"{status} {count}" for status, count in failed.most_common())
                report.warnings.append(
                    f"full text: {sum(failed.values())} of {tried} pages gave no body ({reasons})"
                )
        if not step.failed:
            done.append(replace(item, rows=rows))
    # Every answer a server gave (a 404 too: its status is the record), none for pages never sent.
    return done, [page_exchange(r) for r in results if r.http_status is not None]


def _extraction_job(result: PageResult, plan: PagePlan) -> ExtractionJob:
    return ExtractionJob(
        page=result.body or b"",
        url=result.final_url or result.request.url,
        content_type=result.headers.get("content-type"),
        title=plan.title,
        teaser=plan.teaser,
    )


def page_exchange(result: PageResult) -> RawExchange:
    """A fetched page as a raw exchange for the run's WARC capture."""
    return RawExchange(
        kind="page",
        source_id=result.request.source_id,
        article_id=result.request.article_id,
        url=result.final_url or result.request.url,
        fetched_at=result.fetched_at,
        request_headers=result.request_headers,
        status=result.http_status or 0,
        response_headers=result.headers,
        body=result.body or b"",
    )
