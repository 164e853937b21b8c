"""Fetch stage: download feeds concurrently with conditional GET, bounded retries and size caps.

Input: sources plus the HTTP validators (ETag / Last-Modified) stored for them.
Output: one ``FetchResult`` per source, in source order; failures are data, never raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

from tasks.errors import FeedlakeError, FetchTerminalError, FetchTransientError
from tasks.host_gate import HostGate
from tasks.settings import FeedlakeSettings
from tasks.sources import Source
from tasks.url_guard import check_fetch_url

log = logging.getLogger(__name__)

# Statuses worth retrying: the server says "not now", not "never".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
RETRY_AFTER_CAP_SECONDS = 60.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True)
class FeedValidators:
    """What a server told us last time, sent back for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """The outcome of fetching one source: a body, a 304, or an error."""

    source_id: str
    url: str
    fetched_at: datetime
    final_url: str | None = None
    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    validators: FeedValidators = field(default_factory=FeedValidators)
    not_modified: bool = False
    moved_to: str | None = None
    error: FeedlakeError | None = None
    attempts: int = 0
    elapsed_seconds: float = 0.0
    capture_source: str = "live"
    captured_at: datetime | None = None


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
        limits=limits,
        # Redirects are followed by hand, so that every hop passes the SSRF guard.
        follow_redirects=False,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
    )


async def fetch_feeds(
    sources: Sequence[Source],
    validators: Mapping[str, FeedValidators],
    settings: FeedlakeSettings,
    client: httpx.AsyncClient | None = None,
    on_result: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Fetch every source concurrently; one result per source, in the order given.

    ``on_result`` is called (in the event loop, so it must return quickly) with each result as soon
    as it is final, so a caller can start on the first feeds while the rest are still on the wire.
    """
    own_client = client is None
    http = client if client is not None else build_client(settings)
    limit = asyncio.Semaphore(settings.concurrency)
    gates: dict[str, HostGate] = {}

    async def one(source: Source) -> FetchResult:
        host = urlsplit(source.url).netloc.lower()
        if host not in gates:
            gates[host] = HostGate(settings.per_host_concurrency, settings.per_host_min_gap_seconds)
        result = await fetch_feed(http, source, validators.get(source.id), settings, gates[host], limit)
        if on_result is not None:
            on_result(result)
        return result

    try:
        results = await asyncio.gather(*(one(s) for s in sources))
    finally:
        if own_client:
            await http.aclose()
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
    return list(results)


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
) -> FetchResult:
    """Fetch one source, retrying transient failures with exponential backoff and jitter.

    Each attempt passes the global ``limit`` and the host's ``gate``; backoff sleeps hold neither,
    and a Retry-After holds back the whole host, not just this feed.
    """
    gate = gate or HostGate(settings.per_host_concurrency, settings.per_host_min_gap_seconds)
    limit = limit or asyncio.Semaphore(settings.concurrency)
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        fetched_at = datetime.now(UTC)
        try:
            # Host gate first: feeds of a held-back host wait there without taking global slots.
            async with gate, limit, asyncio.timeout(settings.total_timeout):
                result = await _get_once(client, source, validators, settings, fetched_at)
            return _with_timing(result, attempt, started)
        except (FeedlakeError, TimeoutError, httpx.HTTPError) as exc:
            error = _as_feed_error(exc, source, settings)
        if isinstance(error, FetchTransientError) and error.retry_after is not None:
            gate.hold(error.retry_after)
        if not error.transient or attempt >= settings.fetch_attempts:
            log.warning("fetch failed for %s after %d attempt(s): %s", source.id, attempt, error)
            failed = FetchResult(
                source_id=source.id,
                url=source.url,
                fetched_at=fetched_at,
                status=error.status,
                error=error,
            )
            return _with_timing(failed, attempt, started)
        await asyncio.sleep(_backoff(settings.backoff_seconds, attempt, error))


def _as_feed_error(exc: Exception, source: Source, settings: FeedlakeSettings) -> FeedlakeError:
    """Name a fetch failure in feedlake's terms: transient (retry) or terminal."""
    if isinstance(exc, FeedlakeError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        reason, transient = f"timed out after {settings.total_timeout:.0f}s", True
    elif isinstance(exc, httpx.TimeoutException):
        reason, transient = f"timed out ({name})", True
    elif isinstance(exc, httpx.TooManyRedirects):
        reason, transient = "too many redirects", False
    elif isinstance(exc, httpx.TransportError):
        reason, transient = f"connection failed ({name}: {exc})", True
    else:
        reason, transient = f"HTTP error ({name}: {exc})", False
    kind = FetchTransientError if transient else FetchTerminalError
    return kind(reason, source_id=source.id, url=source.url)


async def _get_once(
    client: httpx.AsyncClient,
    source: Source,
    validators: FeedValidators | None,
    settings: FeedlakeSettings,
    fetched_at: datetime,
) -> FetchResult:
    headers: dict[str, str] = {}
    if validators is not None:
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
    url = source.url
    # Only a chain of permanent redirects (301/308) moves a feed; one temporary hop does not.
    permanent = None
    for _hop in range(MAX_REDIRECTS + 1):
        await check_fetch_url(url, settings.allow_private_networks, source.id)
        response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                permanent = response.status_code in PERMANENT_REDIRECTS and permanent is not False
                url = urljoin(url, location)
                continue
            result = await _answer(response, source, validators, settings, fetched_at)
            return dataclasses.replace(result, moved_to=url) if permanent else result
        finally:
            await response.aclose()
    raise FetchTerminalError(
        f"too many redirects (more than {MAX_REDIRECTS})", source_id=source.id, url=source.url
    )


async def _answer(
    response: httpx.Response,
    source: Source,
    validators: FeedValidators | None,
    settings: FeedlakeSettings,
    fetched_at: datetime,
) -> FetchResult:
    status = response.status_code
    final_url = str(response.url)
    if status == 304:
        return FetchResult(
            source_id=source.id,
            url=source.url,
            fetched_at=fetched_at,
            final_url=final_url,
            status=status,
            not_modified=True,
            validators=validators or FeedValidators(),
        )
    if status in TRANSIENT_STATUSES:
        raise FetchTransientError(
            "server answered with a retryable status",
            source_id=source.id,
            url=source.url,
            status=status,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if status >= 400:
        raise FetchTerminalError(
            "server refused the request; check the URL",
            source_id=source.id,
            url=source.url,
            status=status,
        )
    body = await _read_capped(response, settings.max_body_bytes, source)
    kept = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in ("content-type", "content-language", "etag", "last-modified")
    }
    kept["content-location"] = final_url
    return FetchResult(
        source_id=source.id,
        url=source.url,
        fetched_at=fetched_at,
        final_url=final_url,
        status=status,
        body=body,
        headers=kept,
        validators=FeedValidators(
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        ),
    )


async def _read_capped(response: httpx.Response, cap: int, source: Source) -> bytes:
    # Streamed and counted after decompression, so a gzip bomb is cut off like a huge body.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise FetchTerminalError(
                f"body larger than the {cap} byte cap (FEEDLAKE_MAX_BODY_BYTES)",
                source_id=source.id,
                url=source.url,
                status=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
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
