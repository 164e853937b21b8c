"""Article pages of feed items: fetched with the feed fetcher's machinery, robots.txt honoured.

Input: one ``PageRequest`` per item (its link, and the validators a previous fetch of the page
gave). Output: one ``PageResult`` per request, in request order; every failure is a status
(``ok``, ``not_modified``, ``robots_disallowed``, ``http_<code>``, ``timeout``, ``too_large``,
``refused``, ``error``) with a reason naming the URL's host, never an exception.

Each page is fetched as a feed is (``fetch.client.fetch_with_retries``): the same client
(User-Agent, timeouts, pinned transport, ``FEEDLAKE_CONNECT_TO``), the SSRF guard on every hop,
the per-host gate (politeness across the pages of one host), transient statuses retried with
Retry-After honoured, one ``total_timeout`` deadline per page, and the body bounded by
``page_max_bytes``. At most ``page_concurrency`` pages are on the wire at once, and the run ends
``RUN_DEADLINE_FACTOR`` x ``total_timeout`` per wave of ``page_concurrency`` pages after it starts:
pages still waiting then are ``timeout``. Before a page, and before each redirect it takes, the
target's robots.txt is asked (``fetch.robots``); a page it disallows is never requested.

``PageResult.headers`` are the response's headers, names lowercased, without the ones that frame
the raw transfer (``Content-Encoding``, ``Content-Length``, ``Transfer-Encoding``, hop-by-hop
fields) since ``body`` is the decoded body, and without ``Set-Cookie``. ``request_headers`` are what
the last request sent (feedlake sends no credentials or cookies).
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from feedlake.tasks.errors import FetchTerminalError, bug_reason
from feedlake.tasks.fetch.client import (
    FAILED,
    HTTP_STATUS,
    REFUSED,
    ROBOTS_DISALLOWED,
    RUN_DEADLINE_FACTOR,
    TIMED_OUT,
    TOO_LARGE,
    Failure,
    Fetched,
    PlainTarget,
    build_client,
    fetch_with_retries,
    gate_for,
    sendable_validators,
    sent_headers,
    settle,
    shown_host,
    stored_headers,
)
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.fetch.robots import RobotsCache
from feedlake.tasks.fetch.url_guard import Resolver, parse_fetch_url, resolve_host
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.values import FeedValidators

log = logging.getLogger(__name__)

OK = "ok"
NOT_MODIFIED = "not_modified"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.8"


@dataclass(frozen=True)
class PageRequest:
    """One item's article page to fetch."""

    source_id: str
    article_id: str
    url: str  # the item's link
    validators: FeedValidators = FeedValidators()  # from a previous fetch, for a conditional GET


@dataclass(frozen=True)
class PageResult:
    """What fetching one article page gave: a body, a 304, or a status saying why not."""

    request: PageRequest
    status: str  # ok | not_modified | robots_disallowed | http_<code> | timeout | too_large | refused | error
    final_url: str | None  # after redirects
    http_status: int | None
    body: bytes | None
    headers: Mapping[str, str]
    request_headers: Mapping[str, str]  # what was sent, no secrets
    validators: FeedValidators  # to send next time (the request's own when nothing newer came)
    fetched_at: datetime
    reason: str | None  # when not ok: what happened, naming the URL's host
    attempts: int = 0
    elapsed_seconds: float = 0.0


def fetch_pages(
    requests: Sequence[PageRequest],
    settings: FeedlakeSettings,
    *,
    robots: RobotsCache | None = None,
    on_result: Callable[[PageResult], None] | None = None,
) -> list[PageResult]:
    """Blocking; results in request order. Never raises for one page: every failure is a status."""
    return asyncio.run(fetch_pages_async(requests, settings, robots=robots, on_result=on_result))


class PageFetcher:
    """Fetches article pages one at a time as a run finds them, inside a running event loop.

    Every page shares the fetcher's client, robots.txt cache, ``page_concurrency`` limit and
    per-host gates (pass the feeds' ``gates`` so that feeds and pages of one host keep one pace).
    ``fetch`` never raises for a page; ``close`` cancels what is still running and closes the client.
    """

    def __init__(
        self,
        settings: FeedlakeSettings,
        *,
        robots: RobotsCache | None = None,
        client: httpx.AsyncClient | None = None,
        gates: dict[str, HostGate] | None = None,
        resolve: Resolver = resolve_host,
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        # Room for the pages' connections and the robots.txt fetches beside them (their own limit).
        self._http = client or build_client(settings, connections=2 * settings.page_concurrency)
        self.robots = robots if robots is not None else RobotsCache(settings)
        self._limit = asyncio.Semaphore(settings.page_concurrency)
        self._gates = gates if gates is not None else {}
        self._resolve = resolve
        self._tasks: list[asyncio.Task[PageResult]] = []

    def start(self, request: PageRequest) -> asyncio.Task[PageResult]:
        """Start fetching one page now; the task's result is its PageResult (never an exception)."""
        task = asyncio.create_task(self._fetch(request))
        self._tasks.append(task)
        return task

    async def _fetch(self, request: PageRequest) -> PageResult:
        gate = gate_for(self._gates, request.url, self.settings)
        try:
            return await fetch_page(
                self._http,
                request,
                self.settings,
                gate=gate,
                limit=self._limit,
                robots=self.robots,
                resolve=self._resolve,
            )
        except Exception as exc:  # noqa: BLE001 - one page's surprise is that page's status
            now = datetime.now(UTC)
            return unexpected_page(request, "unexpected error while fetching the page", exc, now)

    async def close(self) -> None:
        """Cancel the pages still running, wait for them, and close a client made here."""
        await settle(self._tasks, self._http, self._own_client)


def page_run_limit(pages: int, settings: FeedlakeSettings) -> float:
    """Seconds a run may spend on ``pages`` pages: a deadline for robots.txt and one for the page,
    per wave of ``page_concurrency`` (a slow host holds at most per_host_concurrency slots)."""
    waves = max(1, math.ceil(pages / settings.page_concurrency))
    return RUN_DEADLINE_FACTOR * settings.total_timeout * waves


async def fetch_pages_async(
    requests: Sequence[PageRequest],
    settings: FeedlakeSettings,
    *,
    robots: RobotsCache | None = None,
    on_result: Callable[[PageResult], None] | None = None,
    client: httpx.AsyncClient | None = None,
    resolve: Resolver = resolve_host,
) -> list[PageResult]:
    """``fetch_pages`` inside a running event loop; the same contract.

    ``on_result`` is called (in the loop: return quickly) with each result once it is final; if
    it raises, that page's result becomes ``error`` and ``on_result`` hears of that instead.
    ``robots`` keeps robots.txt rules across runs (default: a cache for this run only). ``client``
    must come from ``fetch.client.build_client`` (pinned transport, ``FEEDLAKE_CONNECT_TO``).
    Raises ConfigError, before fetching anything, when ``FEEDLAKE_CONNECT_TO`` is malformed.
    """
    fetcher = PageFetcher(settings, robots=robots, client=client, resolve=resolve)
    robots_fetches = fetcher.robots.fetches
    run_limit = page_run_limit(len(requests), settings)

    def deliver(result: PageResult) -> PageResult:
        if on_result is None:
            return result
        try:
            on_result(result)
        except Exception as exc:  # the caller's handling of one page must not sink the others
            what = "handling the fetched page failed"
            failed = unexpected_page(result.request, what, exc, result.fetched_at)
            try:
                on_result(failed)
            except Exception:
                log.warning(
                    "pages: the result handler failed twice for %s; its result is dropped",
                    shown_host(failed.request.url),
                )
            return failed
        return result

    async def one(request: PageRequest) -> PageResult:
        return deliver(await fetcher.start(request))

    tasks = [asyncio.create_task(one(r)) for r in requests]
    try:
        if tasks:
            await asyncio.wait(tasks, timeout=run_limit)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await fetcher.close()
    results = [
        settled_page(task, request, run_limit, deliver) for task, request in zip(tasks, requests, strict=True)
    ]
    counts = Counter(r.status for r in results)
    log.info(
        "pages: %d requested, %d robots.txt fetched; %s",
        len(results),
        fetcher.robots.fetches - robots_fetches,
        ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "nothing to do",
    )
    return results


def timed_out_page(request: PageRequest, run_limit: float, at: datetime) -> PageResult:
    """The ``timeout`` result of a page the run's limit cut: still queued behind its host (or the
    global limit), or still on the wire."""
    reason = (
        f"{shown_host(request.url)}: timed out waiting for the host: the page fetch stops {run_limit:g}s"
        f" after it starts ({RUN_DEADLINE_FACTOR:g} x FEEDLAKE_TOTAL_TIMEOUT per"
        " FEEDLAKE_PAGE_CONCURRENCY pages); a later poll may try it again"
    )
    return _not_fetched(request, TIMED_OUT, reason, at)


def settled_page(
    task: asyncio.Task[PageResult],
    request: PageRequest,
    run_limit: float,
    deliver: Callable[[PageResult], PageResult] = lambda result: result,
) -> PageResult:
    """The result of one page's finished task: its own, or ``timeout`` when the run's limit cut it."""
    now = datetime.now(UTC)
    if task.cancelled():
        return deliver(timed_out_page(request, run_limit, now))
    exc = task.exception()
    if exc is None:
        return task.result()
    return deliver(unexpected_page(request, "unexpected error while fetching the page", exc, now))


async def fetch_page(
    client: httpx.AsyncClient,
    request: PageRequest,
    settings: FeedlakeSettings,
    *,
    gate: HostGate,
    limit: asyncio.Semaphore,
    robots: RobotsCache,
    resolve: Resolver = resolve_host,
) -> PageResult:
    """Fetch one page if robots.txt allows it (the URL's, then each redirect's); never raises for it."""
    fetched_at = datetime.now(UTC)
    host = shown_host(request.url)
    try:
        parse_fetch_url(request.url, request.source_id)
    except FetchTerminalError as exc:
        return _not_fetched(request, REFUSED, f"{host}: {exc.reason}", fetched_at)
    verdict = await robots.check(request.url, client, gate=gate, resolve=resolve)
    if not verdict.allowed:
        status = REFUSED if verdict.refused else ROBOTS_DISALLOWED
        return _not_fetched(request, status, verdict.reason, fetched_at)

    async def before_redirect(url: str) -> Failure | None:
        # Holding this host's gate: the target's robots.txt is fetched outside every host gate.
        hop = await robots.check(url, client, resolve=resolve)
        if hop.allowed:
            return None
        error = FetchTerminalError(
            hop.reason or "robots.txt disallows it", source_id=request.source_id, url=url
        )
        return Failure(error, REFUSED if hop.refused else ROBOTS_DISALLOWED, final_url=url)

    target = PlainTarget(request.source_id, request.url)
    sendable = sendable_validators(request.validators, target, "stored page")
    fetched = await fetch_with_retries(
        client,
        target,
        settings,
        validators=sendable,
        gate=gate,
        limit=limit,
        resolve=resolve,
        cap=settings.page_max_bytes,
        accept=PAGE_ACCEPT,
        before_redirect=before_redirect,
    )
    return _page_result(request, target, sendable, fetched, settings)


def _page_result(
    request: PageRequest,
    target: PlainTarget,
    sendable: FeedValidators,
    fetched: Fetched,
    settings: FeedlakeSettings,
) -> PageResult:
    """A page's result from what its fetch gave."""
    answer = fetched.outcome
    # What every outcome shares: the request, what was sent, when, and how many tries it took.
    sent = PageResult(
        request,
        OK,
        final_url=answer.final_url,
        http_status=None,
        body=None,
        headers={},
        request_headers=sent_headers(answer.request_headers),
        validators=sendable,
        fetched_at=fetched.fetched_at,
        reason=None,
        attempts=fetched.attempts,
        elapsed_seconds=fetched.elapsed_seconds,
    )
    if isinstance(answer, Failure):
        error = answer.error
        status = f"http_{error.status}" if answer.outcome == HTTP_STATUS else answer.outcome
        reason = _reason(request, answer, fetched.attempts, settings)
        result = replace(sent, status=status, http_status=error.status, reason=reason)
        log.debug("page %s: %s (%s)", request.url, result.status, result.reason)
        return result
    answered = replace(sent, http_status=answer.status, headers=stored_headers(answer.headers))
    if answer.body is None:
        return replace(answered, status=NOT_MODIFIED)
    received = sendable_validators(
        FeedValidators(answer.headers.get("etag"), answer.headers.get("last-modified")),
        target,
        "received page",
    )
    return replace(answered, body=answer.body, validators=received)


def _reason(request: PageRequest, failure: Failure, attempts: int, settings: FeedlakeSettings) -> str:
    """Why a page has no body, naming its host (a redirect's when it was one's fault)."""
    error = failure.error
    host = shown_host(failure.final_url or request.url)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if failure.outcome == HTTP_STATUS:
        return f"{host} answered HTTP {error.status}{tries}"
    if failure.outcome == TOO_LARGE:
        return f"{host}: page larger than the {settings.page_max_bytes} byte cap (FEEDLAKE_PAGE_MAX_BYTES)"
    if failure.outcome == ROBOTS_DISALLOWED or error.reason.startswith(f"{host}:"):
        return error.reason  # the robots verdict names its host already
    return f"{host}: {error.reason}{tries}"


def _not_fetched(request: PageRequest, status: str, reason: str | None, at: datetime) -> PageResult:
    """A page that was not (or not completely) requested."""
    return PageResult(
        request,
        status,
        final_url=None,
        http_status=None,
        body=None,
        headers={},
        request_headers={},
        validators=request.validators,
        fetched_at=at,
        reason=reason,
    )


def unexpected_page(request: PageRequest, what: str, exc: BaseException, at: datetime) -> PageResult:
    """A page's ``error`` result for an exception feedlake did not raise on purpose (a bug)."""
    log.debug("page %s: %s:\n%s", request.url, what, "".join(traceback.format_exception(exc)).rstrip())
    return _not_fetched(request, FAILED, f"{shown_host(request.url)}: {what} ({bug_reason(exc)})", at)
