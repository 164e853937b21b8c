"""Fetch stage: download feeds concurrently with conditional GET, bounded retries and size caps.

Input: sources plus the HTTP validators (ETag / Last-Modified) stored for them.
Output: one ``FetchResult`` per source, in source order; failures are data, never raised.

Everything a server sends is untrusted: every redirect hop passes the SSRF guard and is
connected to the address the guard vetted (``feedlake.tasks.fetch.pinned_transport``); ETag and Last-Modified
are kept and sent back only when they are valid header values; Retry-After is read only as ASCII
digits or an HTTP date; the body is decoded by ``fetch.body_decoding``, bounded by the body cap.
``total_timeout`` is a deadline for the whole fetch of a source, from its first request on:
attempts, redirects, DNS lookups, backoff and Retry-After waits all count, whatever the server
does. The stage as a whole ends ``RUN_DEADLINE_FACTOR`` x ``total_timeout`` after it starts (per
wave of ``concurrency`` feeds): feeds still queued behind a slow host then, or still in flight, are
transient errors the next poll retries.

A source's URL may hold a ``${FEEDLAKE_VAR_*}`` secret: every error this stage reports and every
line it (or httpx) logs shows the redacted form (``Source.redact``). ``FetchResult.url`` and
``final_url`` stay the real URLs, for the stages that resolve links against them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import math
import random
import re
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

from feedlake.tasks.errors import (
    FeedlakeError,
    FetchTerminalError,
    FetchTransientError,
    UnexpectedError,
    bug_reason,
)
from feedlake.tasks.fetch.body_decoding import ACCEPT_ENCODING, BoundedDecoder
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.fetch.pinned_transport import PinnedTransport, pinned_addresses
from feedlake.tasks.fetch.url_guard import Resolver, check_fetch_url, resolve_host
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source, redact_values
from feedlake.tasks.values import FeedValidators, FetchResult

log = logging.getLogger(__name__)

# Statuses worth retrying: the server says "not now", not "never".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
RETRY_AFTER_CAP_SECONDS = 60.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
MAX_REDIRECTS = 5
# The fetch stage ends this many total_timeouts after it starts, however the feeds queue up.
RUN_DEADLINE_FACTOR = 2.0
# Where httpx and httpcore log request URLs (INFO) and response headers such as Location (DEBUG).
HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# A header value we send back: visible ASCII, inner spaces allowed (RFC 9110 field-value without
# obs-text, which httpx cannot encode), bounded so a stored validator stays small.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?")
_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,10}")


def build_client(settings: FeedlakeSettings) -> httpx.AsyncClient:
    """Make the HTTP client the fetch stage uses, configured from settings."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.total_timeout,
    )
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    return httpx.AsyncClient(
        timeout=timeout,
        # Connects only to the addresses the SSRF guard vetted for each request.
        transport=PinnedTransport(limits),
        # Redirects are followed by hand, so that every hop passes the SSRF guard.
        follow_redirects=False,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
    )


async def fetch_feeds(
    sources: Sequence[Source],
    validators: Mapping[str, FeedValidators],
    settings: FeedlakeSettings,
    client: httpx.AsyncClient | None = None,
    on_result: Callable[[FetchResult], None] | None = None,
    resolve: Resolver = resolve_host,
) -> list[FetchResult]:
    """Fetch every source concurrently; one result per source, in the order given.

    ``on_result`` is called (in the event loop, so it must return quickly) with each result as soon
    as it is final, so a caller can start on the first feeds while the rest are still on the wire.
    If it raises for a result, that source's result becomes an error of kind ``bug`` and
    ``on_result`` is called once more with it. ``client`` must connect through
    ``PinnedTransport`` (as ``build_client``'s does).
    """
    own_client = client is None
    http = client if client is not None else build_client(settings)
    limit = asyncio.Semaphore(settings.concurrency)
    gates: dict[str, HostGate] = {}
    started = time.monotonic()
    # A catalog larger than the concurrency limit fetches in waves; each wave may take a deadline.
    # One slow host holds at most per_host_concurrency slots, so it cannot stretch the waves.
    waves = max(1, math.ceil(len(sources) / settings.concurrency))
    run_limit = RUN_DEADLINE_FACTOR * settings.total_timeout * waves

    def deliver(result: FetchResult, source: Source) -> FetchResult:
        if on_result is None:
            return result
        try:
            on_result(result)
        except Exception as exc:  # the caller's handling of one result must not sink the others
            failed = _failed(
                source,
                _unexpected(source, "handling the fetched result failed", exc),
                result.fetched_at,
                result.attempts,
                result.elapsed_seconds,
            )
            try:
                on_result(failed)
            except Exception:
                log.warning("fetch: the result handler failed twice for %s; its result is dropped", source.id)
            return failed
        return result

    async def one(source: Source) -> FetchResult:
        host = _host_key(source.url)
        if host not in gates:
            gates[host] = HostGate(settings.per_host_concurrency, settings.per_host_min_gap_seconds)
        result = await fetch_feed(
            http, source, validators.get(source.id), settings, gates[host], limit, resolve
        )
        return deliver(result, source)

    tasks = [asyncio.create_task(one(s)) for s in sources]
    try:
        with _redacting_http_logs(sources):
            if tasks:
                await asyncio.wait(tasks, timeout=run_limit)
            late = [task for task in tasks if not task.done()]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if own_client:
            await http.aclose()
    results = [
        _outcome(task, source, started, run_limit, deliver)
        for task, source in zip(tasks, sources, strict=True)
    ]
    fetched = sum(1 for r in results if r.body is not None)
    unchanged = sum(1 for r in results if r.not_modified)
    failed = sum(1 for r in results if r.error is not None)
    log.info(
        "fetch: %d sources, %d fetched, %d not modified, %d failed",
        len(results),
        fetched,
        unchanged,
        failed,
    )
    return results


def _outcome(
    task: asyncio.Task[FetchResult],
    source: Source,
    started: float,
    run_limit: float,
    deliver: Callable[[FetchResult, Source], FetchResult],
) -> FetchResult:
    """The result of one source's task: its own, or the error that ended it."""
    now = datetime.now(UTC)
    if task.cancelled():
        # Still queued behind its host (or the global limit), or still in flight, at the run's limit.
        error: FeedlakeError = FetchTransientError(
            f"timed out waiting for the host: the fetch stage stops {run_limit:g}s after it starts"
            f" ({RUN_DEADLINE_FACTOR:g} x FEEDLAKE_TOTAL_TIMEOUT per FEEDLAKE_CONCURRENCY feeds);"
            " the next poll retries this feed",
            source_id=source.id,
            url=source.display_url,
        )
        return deliver(_failed(source, error, now, 0, time.monotonic() - started), source)
    exc = task.exception()
    if exc is None:
        return task.result()
    error = _unexpected(source, "unexpected error while fetching", exc)
    return deliver(_failed(source, error, now, 0, time.monotonic() - started), source)


def _host_key(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url  # the guard refuses such a URL; it still needs a gate of its own


@contextmanager
def _redacting_http_logs(sources: Sequence[Source]) -> Iterator[None]:
    """While fetching, httpx's and httpcore's own log lines show redacted URLs and headers."""
    substitutions = tuple(pair for source in sources for pair in source.substitutions)
    if not substitutions:
        yield
        return
    redacting = _RedactingFilter(substitutions)
    # A logger's filters see only the records logged on it, not its children's: name each one.
    loggers = [logging.getLogger(name) for name in HTTP_LOGGERS]
    for logger in loggers:
        logger.addFilter(redacting)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redacting)


class _RedactingFilter(logging.Filter):
    """Rewrite a record's message with every placeholder value replaced by its ``${NAME}``."""

    def __init__(self, substitutions: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self._substitutions = substitutions

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_values(message, self._substitutions)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def fetch_feeds_blocking(
    sources: Sequence[Source],
    validators: Mapping[str, FeedValidators],
    settings: FeedlakeSettings,
    on_result: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Run ``fetch_feeds`` to completion from synchronous code."""
    return asyncio.run(fetch_feeds(sources, validators, settings, on_result=on_result))


async def fetch_feed(
    client: httpx.AsyncClient,
    source: Source,
    validators: FeedValidators | None,
    settings: FeedlakeSettings,
    gate: HostGate | None = None,
    limit: asyncio.Semaphore | None = None,
    resolve: Resolver = resolve_host,
) -> FetchResult:
    """Fetch one source, retrying transient failures with exponential backoff and jitter.

    Each attempt passes the global ``limit`` and the host's ``gate``; backoff sleeps hold neither,
    and a Retry-After holds back the whole host, not just this feed. One deadline
    (``total_timeout``) starts with the first request and covers every attempt, redirect, wait
    and backoff; a transient failure that the deadline leaves no time to retry is reported as is.
    """
    gate = gate or HostGate(settings.per_host_concurrency, settings.per_host_min_gap_seconds)
    limit = limit or asyncio.Semaphore(settings.concurrency)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline: float | None = None
    attempt = 0
    while True:
        attempt += 1
        fetched_at = datetime.now(UTC)
        try:
            # Host gate first: feeds of a held-back host wait there without taking global slots.
            # Queueing for the first slot is not the source's time; from then on everything is.
            async with asyncio.timeout_at(deadline) as budget, gate, limit:
                if deadline is None:
                    deadline = loop.time() + settings.total_timeout
                    budget.reschedule(deadline)
                result = await _get_once(client, source, validators, settings, fetched_at, resolve)
            return _with_timing(result, attempt, started)
        except (FeedlakeError, TimeoutError, httpx.HTTPError) as exc:
            error = _as_feed_error(exc, source, settings)
        except Exception as exc:  # one source's unforeseen failure must not sink the others
            error = _unexpected(source, "unexpected error while fetching", exc)
        delay = _backoff(settings.backoff_seconds, attempt, error)
        wait = delay  # before the next attempt can start
        if isinstance(error, FetchTransientError) and error.retry_after is not None:
            gate.hold(error.retry_after)
            wait = error.retry_after
        out_of_time = deadline is not None and loop.time() + wait >= deadline
        if not error.transient or attempt >= settings.fetch_attempts or out_of_time:
            return _failed(source, error, fetched_at, attempt, time.monotonic() - started)
        await asyncio.sleep(delay)


def _failed(
    source: Source, error: FeedlakeError, fetched_at: datetime, attempts: int, elapsed: float
) -> FetchResult:
    """A source's failed result, logged once at WARNING (``error`` is redacted already)."""
    log.warning("fetch failed for %s after %d attempt(s): %s", source.id, attempts, error)
    result = FetchResult(source.id, source.url, fetched_at, status=error.status, error=error)
    return dataclasses.replace(result, attempts=attempts, elapsed_seconds=elapsed)


def _unexpected(source: Source, what: str, exc: BaseException) -> UnexpectedError:
    """A source's error (kind ``bug``) for an exception feedlake did not raise on purpose.

    The reason names the exception; its traceback, secrets redacted, goes to a debug line for
    whoever debugs the bug.
    """
    trace = source.redact("".join(traceback.format_exception(exc)).rstrip())
    log.debug("fetch of %s: %s:\n%s", source.id, what, trace)
    return UnexpectedError(
        source.redact(f"{what} ({bug_reason(exc)})"), source_id=source.id, url=source.display_url
    )


def _as_feed_error(exc: Exception, source: Source, settings: FeedlakeSettings) -> FeedlakeError:
    """Name a fetch failure in feedlake's terms (transient or terminal), secrets redacted."""
    if isinstance(exc, FeedlakeError):
        return _redacted(exc, source)
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        reason = (
            f"timed out: the {settings.total_timeout:g}s deadline for the whole fetch passed"
            " (FEEDLAKE_TOTAL_TIMEOUT)"
        )
        transient = True
    elif isinstance(exc, httpx.TimeoutException):
        reason, transient = f"timed out ({name})", True
    elif isinstance(exc, httpx.TooManyRedirects):
        reason, transient = "too many redirects", False
    elif isinstance(exc, httpx.TransportError):
        reason, transient = source.redact(f"connection failed ({name}: {exc})"), True
    else:
        reason, transient = source.redact(f"HTTP error ({name}: {exc})"), False
    kind = FetchTransientError if transient else FetchTerminalError
    return kind(reason, source_id=source.id, url=source.display_url)


def _redacted(error: FeedlakeError, source: Source) -> FeedlakeError:
    """``error`` with the source's placeholder values hidden in its reason and URL.

    The guard names the URL it refused (a redirect hop, or the source's URL with its secrets
    filled in): redacted here, where the source is known, before anything logs or stores it.
    """
    reason = source.redact(error.reason)
    url = source.redact(error.url) if error.url else source.display_url
    if reason == error.reason and url == error.url:
        return error
    source_id = error.source_id or source.id
    if isinstance(error, FetchTransientError):
        return FetchTransientError(
            reason, source_id=source_id, url=url, status=error.status, retry_after=error.retry_after
        )
    kind = FetchTransientError if error.transient else FetchTerminalError
    return kind(reason, source_id=source_id, url=url, status=error.status)


async def _get_once(
    client: httpx.AsyncClient,
    source: Source,
    validators: FeedValidators | None,
    settings: FeedlakeSettings,
    fetched_at: datetime,
    resolve: Resolver,
) -> FetchResult:
    # Stored validators may predate these checks (or the state may be damaged): check them again.
    sendable = _sendable_validators(validators, source, "stored")
    headers = {"Accept-Encoding": ACCEPT_ENCODING}  # what BoundedDecoder decodes, whatever the client
    if sendable.etag:
        headers["If-None-Match"] = sendable.etag
    if sendable.last_modified:
        headers["If-Modified-Since"] = sendable.last_modified
    url = source.url
    # Only a chain of permanent redirects (301/308) moves a feed; one temporary hop does not.
    permanent = None
    for _hop in range(MAX_REDIRECTS + 1):
        vetted = await check_fetch_url(url, settings.allow_private_networks, source.id, resolve)
        request = client.build_request("GET", vetted.url, headers=headers)
        with pinned_addresses(vetted.host, vetted.addresses):
            try:
                response = await client.send(request, stream=True)
            except (httpx.RemoteProtocolError, httpx.InvalidURL) as exc:
                # httpx parses a redirect's Location even when it does not follow it; a bad one is
                # the server's fault and will not get better by retrying.
                if isinstance(exc, httpx.RemoteProtocolError) and "location header" not in str(exc):
                    raise
                raise FetchTerminalError(
                    f"redirect to an invalid URL ({str(exc)[:200]})", source_id=source.id, url=url
                ) from None
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                permanent = response.status_code in PERMANENT_REDIRECTS and permanent is not False
                try:
                    url = urljoin(url, location)
                except ValueError:
                    raise FetchTerminalError(
                        f"redirect to an invalid URL {location[:200]!r}",
                        source_id=source.id,
                        url=source.display_url,
                        status=response.status_code,
                    ) from None
                continue
            result = await _answer(response, source, sendable, settings, fetched_at)
            return dataclasses.replace(result, moved_to=url) if permanent else result
        finally:
            await response.aclose()
    raise FetchTerminalError(
        f"too many redirects (more than {MAX_REDIRECTS})", source_id=source.id, url=source.display_url
    )


async def _answer(
    response: httpx.Response,
    source: Source,
    sendable: FeedValidators,
    settings: FeedlakeSettings,
    fetched_at: datetime,
) -> FetchResult:
    status = response.status_code
    final_url = str(response.url)
    answered = FetchResult(source.id, source.url, fetched_at, final_url=final_url, status=status)
    if status == 304:
        return dataclasses.replace(answered, not_modified=True, validators=sendable)
    if status in TRANSIENT_STATUSES:
        raise FetchTransientError(
            "server answered with a retryable status",
            source_id=source.id,
            url=source.display_url,
            status=status,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if status >= 400:
        raise FetchTerminalError(
            "server refused the request; check the URL",
            source_id=source.id,
            url=source.display_url,
            status=status,
        )
    body = await _read_capped(response, settings.max_body_bytes, source)
    received = _sendable_validators(
        FeedValidators(response.headers.get("etag"), response.headers.get("last-modified")),
        source,
        "received",
    )
    kept = {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "content-language")}
    if received.etag:
        kept["etag"] = received.etag
    if received.last_modified:
        kept["last-modified"] = received.last_modified
    kept["content-location"] = final_url
    return dataclasses.replace(answered, body=body, headers=kept, validators=received)


def _sendable_validators(validators: FeedValidators | None, source: Source, what: str) -> FeedValidators:
    """Keep only the validators that are valid header values; warn once naming the source."""
    if validators is None:
        return FeedValidators()
    etag, last_modified = validators.etag, validators.last_modified
    good_etag = etag if _is_header_value(etag) else None
    good_modified = last_modified if _is_header_value(last_modified) else None
    if (etag and not good_etag) or (last_modified and not good_modified):
        refused = [
            f"{name} {str(value)[:80]!r}"
            for name, value, good in (
                ("ETag", etag, good_etag),
                ("Last-Modified", last_modified, good_modified),
            )
            if value and not good
        ]
        log.warning(
            "source %s: %s %s dropped: not a valid header value (visible ASCII only), so not sent back",
            source.id,
            what,
            " and ".join(refused),
        )
        return FeedValidators(good_etag, good_modified)
    return validators


def _is_header_value(value: object) -> bool:
    return isinstance(value, str) and _HEADER_VALUE.fullmatch(value) is not None


async def _read_capped(response: httpx.Response, cap: int, source: Source) -> bytes:
    # Raw bytes, decoded here layer by layer and counted as they come out (fetch.body_decoding):
    # httpx's own decoders expand a whole chunk through every layer before anything is counted.
    try:
        decoder = BoundedDecoder(response.headers.get("content-encoding", ""), cap)
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
    except FetchTerminalError as exc:
        raise FetchTerminalError(
            exc.reason, source_id=source.id, url=source.display_url, status=response.status_code
        ) from None
    return decoder.body()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if _RETRY_AFTER_SECONDS.fullmatch(value):
        return min(float(value), RETRY_AFTER_CAP_SECONDS)
    if not value.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), RETRY_AFTER_CAP_SECONDS))


def _backoff(base: float, attempt: int, error: FeedlakeError) -> float:
    if isinstance(error, FetchTransientError) and error.retry_after is not None:
        return 0.0  # the host's gate already holds every request to it until Retry-After
    # Full jitter: spreads retries of many feeds that failed together.
    return float(random.uniform(0, base * 2 ** (attempt - 1)))


def _with_timing(result: FetchResult, attempts: int, started: float) -> FetchResult:
    return dataclasses.replace(result, attempts=attempts, elapsed_seconds=time.monotonic() - started)
