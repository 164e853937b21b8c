"""The full-text stage: the pages of new teaser items fetched, extracted and applied to their rows.

Two ways in, one set of rules (``full_text/stage.py``):

- ``fetch_sources``, a live poll: feeds and pages on one event loop, so that the pages of one
  source are on the wire while other sources' feeds still are. As each feed arrives, one worker
  thread parses, normalizes and deduplicates it and plans its pages; each page is requested at
  once (the feeds' per-host gates, so a host keeps one pace for both), and each page body goes to
  the extraction pool as soon as it is in. The run ends when the last feed, page and extraction
  has; the pages have ``page_run_limit`` seconds after the last feed.
- ``add_full_text``: the new rows of sources already fetched (a WebSub push, a backfill batch);
  their pages are fetched and extracted together.

A page that fails costs its row nothing: the row keeps the feed's text and says why in
``page_status``. Both return the raw exchanges for the run's WARC capture: every feed document and
every page a server answered (a 404 too: its status is the record), never one that was not sent.
"""

from __future__ import annotations

import asyncio
import html
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.fetch.client import fetch_feeds
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.fetch.pages import (
    OK,
    PageFetcher,
    PageResult,
    fetch_pages,
    page_run_limit,
    timed_out_page,
    unexpected_page,
)
from feedlake.tasks.fetch.robots import RobotsCache
from feedlake.tasks.full_text.stage import (
    PageOutcome,
    PagePlan,
    page_may_recover,
    page_plans,
    with_pages,
)
from feedlake.tasks.lake.page_retries import RETRIES, RETRY_SCHEMA
from feedlake.tasks.lake.raw_capture import RawExchange
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.pipeline.feed_reading import FeedReaders, usable_cores
from feedlake.tasks.pipeline.stages import (
    NormalizedSource,
    SourceBoundary,
    drop_duplicates,
    normalize_fetched,
)
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source, redact_values
from feedlake.tasks.validate.validator import preload_great_expectations
from feedlake.tasks.values import FeedValidators, FetchResult, SourceReport

if TYPE_CHECKING:
    from feedlake.tasks.full_text.extract import ExtractionJob


@dataclass(frozen=True)
class FetchedSources:
    """What a live poll's fetch stage gave: every parsed source, the new rows with their page
    columns (in the order the sources were given), and the raw exchanges."""

    normalized: list[NormalizedSource]
    new: list[NormalizedSource]
    exchanges: list[RawExchange] = field(default_factory=list)
    # The page retry list after this run (None when the run left it as it was), and the rows of
    # it this run's sources had before (see settled_retries).
    retries: pa.Table | None = None
    retries_before: pa.Table = field(default_factory=RETRY_SCHEMA.empty_table)


@dataclass(frozen=True)
class _Prepared:
    """One fetched source after the worker thread: parsed, deduplicated, its pages planned."""

    normalized: NormalizedSource | None
    new: NormalizedSource | None
    plans: list[PagePlan]
    exchange: RawExchange | None


def fetch_sources(
    targets: Sequence[Source],
    validators: Mapping[str, FeedValidators],
    settings: FeedlakeSettings,
    due: Sequence[Source],
    run_id: str,
    reports: dict[str, SourceReport],
    store: ObjectStore,
    retries: pa.Table | None = None,
) -> FetchedSources:
    """Fetch the due sources, and the pages of their new teaser items, all of it overlapping.

    ``targets`` are what to fetch (``health.fetch_targets``: a moved source's new URL), ``due``
    the sources themselves, in the order results come back in. The first feed body starts Great
    Expectations' import for the validate stage (a run in which every source answers 304 never
    imports it), and the first page to extract starts the extraction pool.

    ``retries`` are the rows whose page failed on an earlier poll for a reason that may pass
    (``lake.page_retries``): the pages of the due sources' rows are fetched again from the start,
    a row whose page now gives its body becomes a new version of its article (same article id and
    content hash, this run's run id), and one that fails again waits for the next poll until
    ``page_attempts`` polls have tried it.
    """
    # The event loop and the worker thread share the GIL; by default a waiting thread gets it only
    # after 5 ms, a delay every response would pay while a parse runs. Hand it over sooner.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.0005))
    try:
        # Many feeds are read (parsed and normalized) in worker processes, one source per thread
        # waiting on them; a few are read by one thread here (feed_reading.FeedReaders.for_run).
        processes = settings.parse_processes or usable_cores()
        readers = FeedReaders.for_run(len(due), processes)
        with ThreadPoolExecutor(
            max_workers=readers.processes, thread_name_prefix="feedlake-normalize"
        ) as worker:
            run = _LiveRun(settings, due, run_id, reports, store, worker, readers)
            waiting = retries if retries is not None else RETRY_SCHEMA.empty_table()
            asyncio.run(run.fetch(targets, validators, waiting))
    finally:
        sys.setswitchinterval(switch_interval)
    return run.finish()


class _LiveRun:
    """The state of one live fetch stage (see ``fetch_sources``)."""

    def __init__(
        self,
        settings: FeedlakeSettings,
        due: Sequence[Source],
        run_id: str,
        reports: dict[str, SourceReport],
        store: ObjectStore,
        worker: Executor,
        readers: FeedReaders,
    ) -> None:
        self.settings = settings
        self.readers = readers
        self.due = list(due)
        self.by_id = {s.id: s for s in due}
        self.run_id = run_id
        self.reports = reports
        self.store = store
        self.worker = worker
        self.processes = settings.extract_processes or os.cpu_count() or 1
        self.gates: dict[str, HostGate] = {}
        self.pages: PageFetcher | None = None
        self.prepared: dict[str, _Prepared] = {}
        self.preparing: list[asyncio.Future[None]] = []
        # (plan, task, whether it retries an earlier poll's page)
        self.page_tasks: list[tuple[PagePlan, asyncio.Task[PageOutcome], bool]] = []
        self.outcomes: dict[str, dict[str, PageOutcome]] = defaultdict(dict)
        self.page_exchanges: list[RawExchange] = []
        self.preloading = False
        self.retried = RETRY_SCHEMA.empty_table()
        self.kept_waiting = RETRY_SCHEMA.empty_table()
        self.retry_outcomes: dict[str, dict[str, PageOutcome]] = defaultdict(dict)
        self.retry_plans: dict[str, list[PagePlan]] = defaultdict(list)

    async def fetch(
        self, targets: Sequence[Source], validators: Mapping[str, FeedValidators], retries: pa.Table
    ) -> None:
        """Fetch every feed, then wait for their sources' preparation, pages and extractions."""
        ours = pc.is_in(retries.column("source_id"), value_set=pa.array(list(self.by_id), pa.string()))
        self.retried, self.kept_waiting = retries.filter(ours), retries.filter(pc.invert(ours))
        # A source's retries start once its feed is in and the source still in the run, so they
        # never hold its host's gate ahead of its feed, and a failing source retries nothing.
        for plan in retry_plans(self.retried):
            self.retry_plans[plan.request.source_id].append(plan)
        try:
            await fetch_feeds(targets, validators, self.settings, on_result=self.arrived, gates=self.gates)
            await asyncio.gather(*self.preparing, return_exceptions=True)
            await self._wait_for_pages()
        finally:
            if self.pages is not None:
                await self.pages.close()

    def arrived(self, result: FetchResult) -> None:
        """A feed's final result (in the loop): its source goes to the worker thread."""
        if result.body is not None:
            self.readers.body_arrived()
            if not self.preloading:
                self.preloading = True
                preload_great_expectations()
        self.preparing.append(asyncio.ensure_future(self._prepare(result)))

    async def _prepare(self, result: FetchResult) -> None:
        loop = asyncio.get_running_loop()
        source = self.by_id[result.source_id]
        report = self.reports[result.source_id]
        try:
            prepared = await loop.run_in_executor(self.worker, self._prepare_source, result, source)
        except Exception as exc:  # noqa: BLE001 - the boundaries inside should have held it: a backstop
            with SourceBoundary(report, "normalize"):
                raise exc
            return
        finally:
            if result.body is not None:
                self.readers.body_done()
        self.prepared[result.source_id] = prepared
        for plan in prepared.plans:
            self.page_tasks.append((plan, asyncio.create_task(self._page(plan)), False))
        retries = self.retry_plans.pop(result.source_id, [])
        if report.status != "error":
            for plan in retries:
                self.page_tasks.append((plan, asyncio.create_task(self._page(plan)), True))

    def _prepare_source(self, result: FetchResult, source: Source) -> _Prepared:
        # In the worker thread: everything here is per source and behind its boundaries.
        report = self.reports[source.id]
        exchange = None
        if result.body is not None:  # captured even when it does not parse: that is when it is needed
            with SourceBoundary(report, "fetch") as step:
                exchange = feed_exchange(result, source)
            if step.failed:
                return _Prepared(None, None, [], None)
        normalized = normalize_fetched([result], [source], self.run_id, self.reports, self.readers.read)
        new = drop_duplicates(self.store, normalized, self.reports)
        if not new:
            return _Prepared(normalized[0] if normalized else None, None, [], exchange)
        with SourceBoundary(report, "full_text") as step:
            plans = page_plans(new[0].rows, source.full_text)
        if step.failed:  # a source that failed here leaves the run, as at every stage
            return _Prepared(normalized[0], None, [], exchange)
        return _Prepared(normalized[0], new[0], plans, exchange)

    async def _page(self, plan: PagePlan) -> PageOutcome:
        if self.pages is None:
            # Pages get a client of their own (the gates are shared): httpcore scans every connection
            # of its pool for each request, so one pool sized for both cost more CPU than it saved.
            self.pages = PageFetcher(self.settings, robots=RobotsCache(self.settings), gates=self.gates)
        result = await self.pages.start(plan.request)
        if result.http_status is not None:
            self.page_exchanges.append(page_exchange(result))
        if result.status != OK or result.body is None:
            return PageOutcome(result, None)
        # The extractor (trafilatura) is imported by the first page, not by a poll that fetches none.
        from feedlake.tasks.full_text.extract import article_or_failed, extract_in_pool

        job = extraction_job(result, plan)
        future = extract_in_pool(job, self.processes)
        try:
            await asyncio.wait([asyncio.wrap_future(future)])
        except asyncio.CancelledError:
            future.cancel()  # a job still queued leaves the long-lived pool free for the next run
            raise
        return PageOutcome(result, article_or_failed(future, job))

    async def _wait_for_pages(self) -> None:
        if not self.page_tasks:
            return
        run_limit = page_run_limit(len(self.page_tasks), self.settings)
        tasks = [task for _, task, _ in self.page_tasks]
        await asyncio.wait(tasks, timeout=run_limit)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for plan, task, retry in self.page_tasks:
            request = plan.request
            if task.cancelled():
                outcome = PageOutcome(timed_out_page(request, run_limit, datetime.now(UTC)), None)
            elif (error := task.exception()) is not None:
                at = datetime.now(UTC)
                outcome = PageOutcome(unexpected_page(request, "the page's work failed", error, at), None)
            else:
                outcome = task.result()
            found = self.retry_outcomes if retry else self.outcomes
            found[request.source_id][request.article_id] = outcome

    def finish(self) -> FetchedSources:
        """The stage's result, sources in ``due`` order, each source's pages applied to its rows."""
        normalized, planned, exchanges = [], [], []
        for source in self.due:
            prepared = self.prepared.get(source.id)
            if prepared is None:
                continue
            if prepared.normalized is not None:
                normalized.append(prepared.normalized)
            if prepared.exchange is not None:
                exchanges.append(prepared.exchange)
            if prepared.new is not None:
                planned.append(prepared.new)
        new = apply_pages(planned, self.outcomes, self.reports)
        new, retries = self._retry_results(new)
        return FetchedSources(normalized, new, [*exchanges, *self.page_exchanges], retries, self.retried)

    def _retry_results(self, new: list[NormalizedSource]) -> tuple[list[NormalizedSource], pa.Table | None]:
        """The new rows plus the retried rows that got their page; the retry list after this run."""
        limit = self.settings.page_attempts
        # A source that failed this run commits nothing: its rows wait as they were.
        failed = [r.source_id for r in self.reports.values() if r.status == "error"]
        lost = pc.is_in(self.retried.column("source_id"), value_set=pa.array(failed, pa.string()))
        retried, unchanged = self.retried.filter(pc.invert(lost)), self.retried.filter(lost)
        versions, waiting = retried_rows(retried, self.retry_outcomes, self.run_id, limit)
        by_source = {item.source_id: item for item in new}
        for source_id, tried in self.retry_outcomes.items():
            self.reports[source_id].pages_tried += len(tried)
        for source_id, rows in versions.items():
            report = self.reports[source_id]
            report.pages_used += rows.num_rows
            report.warnings.append(f"full text: {rows.num_rows} page(s) that failed before gave a body now")
            item = by_source.get(source_id)
            if item is None:
                by_source[source_id] = NormalizedSource(source_id, rows, None)
            else:
                schema = item.rows.schema
                both = [pa.Table.from_batches([item.rows]), pa.Table.from_batches([rows]).cast(schema)]
                merged = pa.concat_tables(both).combine_chunks().to_batches()
                by_source[source_id] = replace(item, rows=merged[0] if merged else item.rows)
        ordered = [by_source[s.id] for s in self.due if s.id in by_source]
        failed_now = [failed_pages(item.rows) for item in ordered] if limit > 0 else []
        if not self.retried.num_rows and not any(t.num_rows for t in failed_now):
            return ordered, None
        return ordered, pa.concat_tables([self.kept_waiting, unchanged, waiting, *failed_now])


def settled_retries(fetched: FetchedSources, failed: set[str]) -> pa.Table | None:
    """The retry list to commit: as the fetch stage left it, except that a source which failed
    after it (validation, a batch held whole) keeps the rows it had: it commits no new row, so it
    must not add a retry, nor drop one whose new version it does not commit."""
    if fetched.retries is None or not failed:
        return fetched.retries
    names = pa.array(sorted(failed), pa.string())
    after, before = fetched.retries, fetched.retries_before
    kept = after.filter(pc.invert(pc.is_in(after.column("source_id"), value_set=names)))
    return pa.concat_tables([kept, before.filter(pc.is_in(before.column("source_id"), value_set=names))])


def retry_plans(retries: pa.Table) -> list[PagePlan]:
    """The page requests of rows waiting for a retry (every one: the rule chose them already)."""
    return page_plans(retries, "always")


def retried_rows(
    retries: pa.Table, outcomes: Mapping[str, Mapping[str, PageOutcome]], run_id: str, limit: int
) -> tuple[dict[str, pa.RecordBatch], pa.Table]:
    """Per source, the retried rows whose page gave its body (as new versions from ``run_id``), and
    the rows that wait for another poll (retried fewer than ``limit`` times, failing in a way that
    may pass)."""
    versions: dict[str, pa.RecordBatch] = {}
    waiting = []
    for source_id in sorted(set(retries.column("source_id").to_pylist())):
        mine = retries.filter(pc.equal(retries.column("source_id"), source_id))
        rows = mine.drop_columns([RETRIES]).cast(ARTICLE_SCHEMA).combine_chunks().to_batches()[0]
        applied = with_pages(rows, outcomes.get(source_id, {}))
        got_body = pc.equal(applied.column("content_source"), "page")
        if pc.any(got_body).as_py():
            body = applied.filter(got_body)
            versions[source_id] = body.set_column(
                body.schema.get_field_index("run_id"),
                "run_id",
                pa.array([run_id] * body.num_rows, pa.string()),
            )
        attempts = pc.add(mine.column(RETRIES), 1)
        again = pc.and_(
            pc.invert(got_body),
            pc.and_(
                pa.array([page_may_recover(s) for s in applied.column("page_status").to_pylist()]),
                pc.less(attempts, limit),
            ),
        )
        still = pa.Table.from_batches([applied]).append_column(RETRIES, attempts).filter(again)
        waiting.append(still.cast(RETRY_SCHEMA))
    return versions, pa.concat_tables(waiting) if waiting else RETRY_SCHEMA.empty_table()


def failed_pages(rows: pa.RecordBatch) -> pa.Table:
    """A source's new rows whose page failed in a way that may pass, as retry rows (no retry yet)."""
    recover = pa.array([page_may_recover(s) for s in rows.column("page_status").to_pylist()], pa.bool_())
    failed = pa.Table.from_batches([rows]).filter(recover)
    retries = pa.array([0] * failed.num_rows, pa.int32())
    return failed.append_column(RETRIES, retries).cast(RETRY_SCHEMA)


def add_full_text(
    normalized: Sequence[NormalizedSource],
    sources: Mapping[str, Source],
    settings: FeedlakeSettings,
    reports: dict[str, SourceReport],
) -> tuple[list[NormalizedSource], list[RawExchange]]:
    """Fetch and extract the pages of new teaser items; every source's rows get their page columns.

    Pages of all sources are fetched together (the per-host gate keeps each site's pace) and
    extracted in the extraction pool. Returns the rows and the raw page exchanges.
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
    fetched = [r for r in results if r.status == OK and r.body is not None]
    jobs = [extraction_job(r, plans[(r.request.source_id, r.request.article_id)]) for r in fetched]
    processes = settings.extract_processes or os.cpu_count() or 1
    from feedlake.tasks.full_text.extract import extract_articles

    extracted = dict(zip((id(r) for r in fetched), extract_articles(jobs, processes), strict=True))
    outcomes: dict[str, dict[str, PageOutcome]] = defaultdict(dict)
    for result in results:
        outcome = PageOutcome(result, extracted.get(id(result)))
        outcomes[result.request.source_id][result.request.article_id] = outcome
    done = apply_pages(planned, outcomes, reports)
    return done, [page_exchange(r) for r in results if r.http_status is not None]


def apply_pages(
    planned: Sequence[NormalizedSource],
    outcomes: Mapping[str, Mapping[str, PageOutcome]],
    reports: dict[str, SourceReport],
) -> list[NormalizedSource]:
    """Each source's rows with its page outcomes applied, and the pages counted in its report."""
    done = []
    for item in planned:
        report = reports[item.source_id]
        mine = outcomes.get(item.source_id, {})
        with SourceBoundary(report, "full_text") as step:
            rows = with_pages(item.rows, mine)
            report.pages_tried = len(mine)
            report.pages_used = pc.sum(pc.equal(rows.column("content_source"), "page")).as_py() or 0
            failed = Counter(
                o.article.status if o.article is not None else o.result.status
                for o in mine.values()
                if o.article is None or o.article.status != OK
            )
            if failed:
                reasons = ", ".join(f"{status} {count}" for status, count in failed.most_common())
                report.warnings.append(
                    f"full text: {sum(failed.values())} of {len(mine)} pages gave no body ({reasons})"
                )
        if not step.failed:
            done.append(replace(item, rows=rows))
    return done


def extraction_job(result: PageResult, plan: PagePlan) -> ExtractionJob:
    """What the extractor gets for a fetched page: its bytes and URL, and the item's title and teaser."""
    from feedlake.tasks.full_text.extract import ExtractionJob

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


def feed_exchange(result: FetchResult, source: Source) -> RawExchange:
    """A fetched feed document as a raw exchange for the run's WARC capture, its secrets redacted.

    A value substituted into the source's URL (a ``${FEEDLAKE_VAR_*}`` token) is replaced by its
    placeholder in the URL, the headers and the body alike (a feed may quote its own URL): the
    capture of such a feed is not byte-exact, by design, since credentials never reach the lake.
    """
    body = result.body or b""
    if source.substitutions:
        # latin-1 maps every byte to one character and back, so the rest of the body is unchanged.
        body = redact_values(body.decode("latin-1"), quoted_forms(source)).encode("latin-1", "replace")
    return RawExchange(
        kind="feed",
        source_id=result.source_id,
        article_id=None,
        url=source.redact(result.final_url or result.url),
        fetched_at=result.fetched_at,
        request_headers={k: source.redact(v) for k, v in result.request_headers.items()},
        status=result.status or 200,
        response_headers={k: source.redact(v) for k, v in result.response_headers.items()},
        body=body,
    )


def quoted_forms(source: Source) -> list[tuple[str, str]]:
    """Every (placeholder name, form) a substituted value may take inside a document: as written,
    XML/HTML-escaped (``&amp;``), JSON-escaped (``\\/``), percent-encoded in lower case, and its
    UTF-8 bytes read as latin-1 (how ``feed_exchange`` reads a body); ``redact_values`` adds the
    upper-case percent-encodings."""
    pairs = []
    for name, value in source.substitutions:
        forms = {
            value,
            html.escape(value),
            html.escape(value, quote=False),
            value.replace("/", "\\/"),
            quote(value, safe="").lower(),
            quote(value, safe="/:").lower(),
            value.encode("utf-8").decode("latin-1"),
        }
        pairs += [(name, form) for form in forms if form]
    return pairs
