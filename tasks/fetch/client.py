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

The machinery is shared with the article pages of feed items (``fetch.pages``) and their
robots.txt (``fetch.robots``): ``build_client`` makes the client, and ``fetch_with_retries`` runs
one guarded fetch (SSRF guard on every hop, pinned connections, bounded body, retries, one
deadline) for anything that has an id and a URL (``FetchTarget``), returning an ``Answer`` or a
``Failure`` whose ``outcome`` says what ended it (the status an article page reports).

``FEEDLAKE_CONNECT_TO`` (``host:port=ip:port,...``, as curl's ``--connect-to``) sends requests for
a host and port to another address, the URL and Host header unchanged: the guard is given that
address in place of a DNS answer, so it still vets it, and the client's transport dials its port.
The demo and tests serve real pages of real sites from a local server this way, without DNS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import ipaddress
import logging
import math
import random
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from feedlake.tasks.errors import (
    ConfigError,
    FeedlakeError,
    FetchTerminalError,
    FetchTransientError,
    UnexpectedError,
    bug_reason,
)
from feedlake.tasks.fetch.body_decoding import ACCEPT_ENCODING, BoundedDecoder
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.fetch.pinned_transport import (
    PinnedBackend,
    PinnedTransport,
    SocketOption,
    pinned_addresses,
)
from feedlake.tasks.fetch.url_guard import Resolver, check_fetch_url, parse_fetch_url, resolve_host
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
# How body_decoding words a body over the cap (its other refusals are about the encoding).
_OVER_CAP = "byte cap"

# What ended a fetch that gave no answer to use (``Failure.outcome``); an article page reports it
# as its status (``HTTP_STATUS`` as ``http_<code>``).
HTTP_STATUS = "http"  # the server answered 4xx/5xx: the error's status holds the code
TIMED_OUT = "timeout"  # the deadline passed, or a connect/read/pool timeout
TOO_LARGE = "too_large"  # the body passed the cap
REFUSED = "refused"  # the SSRF guard refused a URL or hop, or a redirect named an invalid URL
ROBOTS_DISALLOWED = "robots_disallowed"  # a redirect hop's robots.txt disallows it (fetch.pages)
FAILED = "error"  # anything else: connection failure, DNS, bad encoding, too many redirects, bug


class FetchTarget(Protocol):
    """What the shared fetch needs to know of what it fetches: a feed ``Source``, a page, a robots.txt."""

    @property
    def id(self) -> str:
        """Named in errors as their source id."""
        ...

    @property
    def url(self) -> str:
        """The URL to fetch, secrets filled in."""
        ...

    @property
    def display_url(self) -> str:
        """The URL as errors and logs may show it."""
        ...

    def redact(self, text: str) -> str:
        """``text`` with every secret of the URL hidden."""
        ...


@dataclass(frozen=True)
class PlainTarget:
    """A URL the shared fetch names by an id, with nothing to hide (item pages, robots.txt)."""

    id: str
    url: str

    @property
    def display_url(self) -> str:
        """The URL itself: it holds no placeholder secret."""
        return self.url

    def redact(self, text: str) -> str:
        """``text`` unchanged: nothing to hide."""
        return text


async def settle(tasks: Sequence[asyncio.Task[Any]], http: httpx.AsyncClient, own_client: bool) -> None:
    """Cancel the tasks still running, wait until every one has ended, and close a client made here."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if own_client:
        await http.aclose()


def gate_for(gates: dict[str, HostGate], url: str, settings: FeedlakeSettings) -> HostGate:
    """The politeness gate of ``url``'s host, made on first use: one per host and run."""
    host = host_key(url)
    if host not in gates:
        gates[host] = HostGate(settings.per_host_concurrency, settings.per_host_min_gap_seconds)
    return gates[host]


# Response headers not kept: they describe the raw transfer, not the decoded body, or are cookies.
DROPPED_HEADERS = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "set-cookie",
        "set-cookie2",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers never reported, should a caller's client add them.
SECRET_REQUEST_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def stored_headers(headers: httpx.Headers) -> dict[str, str]:
    """A response's headers as kept with its decoded body: no transfer framing, no cookies."""
    return {name: value for name, value in headers.items() if name not in DROPPED_HEADERS}


def sent_headers(headers: httpx.Headers | None) -> dict[str, str]:
    """What a request sent, without any credentials a caller's client may have added."""
    if headers is None:
        return {}
    return {name: value for name, value in headers.items() if name not in SECRET_REQUEST_HEADERS}


@dataclass(frozen=True)
class Answer:
    """A server's final answer to one attempt, redirects followed: a body (status below 400) or a 304."""

    final_url: str
    status: int
    body: bytes | None  # None for a 304
    headers: httpx.Headers  # the response's, as received
    request_headers: httpx.Headers  # what the last hop's request sent
    moved_to: str | None = None  # where a chain of permanent redirects (301/308) only led


@dataclass(frozen=True)
class Failure:
    """Why a fetch gave no answer to use: the error (secrets redacted) and what kind of end it was."""

    error: FeedlakeError
    outcome: str  # HTTP_STATUS, TIMED_OUT, TOO_LARGE, REFUSED, ROBOTS_DISALLOWED or FAILED
    final_url: str | None = None  # the URL that answered, when one did
    request_headers: httpx.Headers | None = None  # what the request that was answered sent


@dataclass(frozen=True)
class Fetched:
    """The end of one fetch with its retries: the answer or failure, the attempts and their time."""

    outcome: Answer | Failure
    attempts: int
    fetched_at: datetime  # when the last attempt started
    elapsed_seconds: float


# Called with a redirect's target before it is requested; a Failure stops the fetch there.
RedirectCheck = Callable[[str], Awaitable[Failure | None]]


def build_client(settings: FeedlakeSettings, *, connections: int | None = None) -> httpx.AsyncClient:
    """Make the HTTP client the fetch stage uses, configured from settings.

    ``connections`` bounds the connection pool (default: ``settings.concurrency``). Raises
    ConfigError when ``settings.connect_to`` is malformed.
    """
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.total_timeout,
    )
    pool = connections if connections is not None else settings.concurrency
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    rules = connect_to_rules(settings.connect_to)
    return httpx.AsyncClient(
        timeout=timeout,
        # Connects only to the addresses the SSRF guard vetted for each request.
        transport=ConnectToTransport(limits, rules) if rules else PinnedTransport(limits),
        # Redirects are followed by hand, so that every hop passes the SSRF guard.
        follow_redirects=False,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
    )


ConnectToRules = Mapping[tuple[str, int], tuple[str, int]]


@functools.cache
def connect_to_rules(text: str) -> ConnectToRules:
    """Parse ``FEEDLAKE_CONNECT_TO`` (``host:port=ip:port,...``); raise ConfigError naming a bad entry."""
    rules: dict[tuple[str, int], tuple[str, int]] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        problem = None
        origin, _, target = entry.partition("=")
        try:
            key = _connect_to_origin(origin.strip())
            address = _connect_to_address(target.strip())
        except (FetchTerminalError, ValueError) as exc:
            problem = exc.reason if isinstance(exc, FetchTerminalError) else str(exc)
        else:
            if key in rules:
                problem = f"{key[0]}:{key[1]} is named twice"
            rules[key] = address
        if problem is not None:
            raise ConfigError(
                f"FEEDLAKE_CONNECT_TO entry {entry[:100]!r} is not host:port=ip:port ({problem})"
            )
    return MappingProxyType(rules)


def _connect_to_origin(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit()):
        raise ValueError("the host needs an explicit port")
    _url, ascii_host, number = parse_fetch_url(f"http://{text}/")
    try:
        ipaddress.ip_address(ascii_host.strip("[]"))
    except ValueError:
        return ascii_host, number
    # An address in the URL is never looked up, so there is nothing to redirect.
    raise ValueError(f"{host} is an address, not a host name")


def _connect_to_address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise ValueError("the target needs an address and a port 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return str(ipaddress.ip_address(host)), int(port)


def connecting_resolver(rules: ConnectToRules, resolve: Resolver) -> Resolver:
    """``resolve``, except that a host and port named in ``rules`` resolve to the address given there."""
    if not rules:
        return resolve

    async def resolve_connect_to(host: str, port: int) -> list[str]:
        target = rules.get((host.lower(), port))
        return [target[0]] if target is not None else await resolve(host, port)

    return resolve_connect_to


class ConnectToBackend(PinnedBackend):
    """``PinnedBackend`` that dials the port ``FEEDLAKE_CONNECT_TO`` names for a host and port.

    The address comes from the pin, which the guard vetted (``connecting_resolver`` gave it).
    """

    def __init__(self, rules: ConnectToRules) -> None:
        super().__init__()
        self._rules = rules

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect as ``PinnedBackend`` does, to the rule's port when the host and port have one."""
        target = self._rules.get((host.lower(), port))
        if target is not None:
            port = target[1]
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


class ConnectToTransport(PinnedTransport):
    """``PinnedTransport`` whose connections follow ``FEEDLAKE_CONNECT_TO``."""

    def __init__(self, limits: httpx.Limits, rules: ConnectToRules) -> None:
        super().__init__(limits)
        # Rebuilt as PinnedTransport builds it, with the backend that knows the rules' ports.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=ConnectToBackend(rules),
        )


async def fetch_feeds(
    sources: Sequence[Source],
    validators: Mapping[str, FeedValidators],
    settings: FeedlakeSettings,
    client: httpx.AsyncClient | None = None,
    on_result: Callable[[FetchResult], None] | None = None,
    resolve: Resolver = resolve_host,
    gates: dict[str, HostGate] | None = None,
) -> list[FetchResult]:
    """Fetch every source concurrently; one result per source, in the order given.

    ``on_result`` is called (in the event loop, so it must return quickly) with each result as soon
    as it is final, so a caller can start on the first feeds while the rest are still on the wire.
    If it raises for a result, that source's result becomes an error of kind ``bug`` and
    ``on_result`` is called once more with it. ``client`` must connect through
    ``PinnedTransport`` (as ``build_client``'s does). ``gates`` are the per-host politeness gates
    to share with other fetches of the run (a ``fetch.pages.PageFetcher``'s); default: this call's.
    """
    own_client = client is None
    http = client if client is not None else build_client(settings)
    limit = asyncio.Semaphore(settings.concurrency)
    gates = gates if gates is not None else {}
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
        result = await fetch_feed(
            http,
            source,
            validators.get(source.id),
            settings,
            gate_for(gates, source.url, settings),
            limit,
            resolve,
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
        await settle(tasks, http, own_client)
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


def host_key(url: str) -> str:
    """The key of a URL's host gate: its host and port as written (lowercase)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url  # the guard refuses such a URL; it still needs a gate of its own


def shown_host(url: str) -> str:
    """A URL's host (and port) as a reason names it, without user info; the URL's start if it has none."""
    host = host_key(url).rpartition("@")[2]
    return host or url[:100]


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
    # Stored validators may predate these checks (or the state may be damaged): check them again.
    sendable = sendable_validators(validators, source, "stored")
    fetched = await fetch_with_retries(
        client, source, settings, validators=sendable, gate=gate, limit=limit, resolve=resolve
    )
    answer = fetched.outcome
    if isinstance(answer, Failure):
        return _failed(source, answer.error, fetched.fetched_at, fetched.attempts, fetched.elapsed_seconds)
    answered = FetchResult(
        source.id,
        source.url,
        fetched.fetched_at,
        final_url=answer.final_url,
        status=answer.status,
        moved_to=answer.moved_to,
        attempts=fetched.attempts,
        elapsed_seconds=fetched.elapsed_seconds,
    )
    if answer.body is None:
        return dataclasses.replace(answered, not_modified=True, validators=sendable)
    received = sendable_validators(
        FeedValidators(answer.headers.get("etag"), answer.headers.get("last-modified")),
        source,
        "received",
    )
    kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "content-language")}
    if received.etag:
        kept["etag"] = received.etag
    if received.last_modified:
        kept["last-modified"] = received.last_modified
    # The document's base URL: a Content-Location the server gave names the representation (RFC
    # 7231 3.1.4.2; feedparser resolves against it too), resolved against the URL that answered.
    location = urljoin(answer.final_url, answer.headers.get("content-location", "").strip())
    web = urlsplit(location).scheme in ("http", "https")
    kept["content-location"] = location if web else answer.final_url
    return dataclasses.replace(
        answered,
        body=answer.body,
        headers=kept,
        validators=received,
        request_headers=sent_headers(answer.request_headers),
        response_headers=stored_headers(answer.headers),
    )


async def fetch_with_retries(
    client: httpx.AsyncClient,
    target: FetchTarget,
    settings: FeedlakeSettings,
    *,
    validators: FeedValidators,
    gate: HostGate,
    limit: asyncio.Semaphore,
    resolve: Resolver = resolve_host,
    cap: int | None = None,
    accept: str | None = None,
    before_redirect: RedirectCheck | None = None,
) -> Fetched:
    """Fetch ``target.url``, retrying transient failures with exponential backoff and jitter.

    The fetch of a feed, shared with pages and robots.txt: each attempt passes ``limit`` and the
    host's ``gate`` (the gate first); backoff sleeps hold neither, and a Retry-After holds the
    whole host. One deadline (``total_timeout``) starts with the first request and covers every
    attempt, redirect, wait and backoff. ``validators`` (already checked by ``sendable_validators``)
    make it a conditional GET; ``cap`` bounds the decoded body (default ``max_body_bytes``);
    ``accept`` replaces the client's Accept header; ``before_redirect`` may stop a redirect.
    Never raises for the fetch's own failures: they are the returned ``Failure``.
    """
    resolve = connecting_resolver(connect_to_rules(settings.connect_to), resolve)
    cap = cap if cap is not None else settings.max_body_bytes
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline: float | None = None
    attempt = 0
    while True:
        attempt += 1
        fetched_at = datetime.now(UTC)
        try:
            # Host gate first: requests to a held-back host wait there without taking global slots.
            # Queueing for the first slot is not the fetch's time; from then on everything is.
            async with asyncio.timeout_at(deadline) as budget, gate, limit:
                if deadline is None:
                    deadline = loop.time() + settings.total_timeout
                    budget.reschedule(deadline)
                outcome = await _get_once(
                    client, target, validators, settings, resolve, cap, accept, before_redirect
                )
            if isinstance(outcome, Answer):
                return Fetched(outcome, attempt, fetched_at, time.monotonic() - started)
            failure = dataclasses.replace(outcome, error=_redacted(outcome.error, target))
        except (FeedlakeError, TimeoutError, httpx.HTTPError) as exc:
            failure = Failure(_as_feed_error(exc, target, settings), _outcome_of(exc))
        except Exception as exc:  # one fetch's unforeseen failure must not sink the others
            failure = Failure(_unexpected(target, "unexpected error while fetching", exc), FAILED)
        error = failure.error
        delay = _backoff(settings.backoff_seconds, attempt, error)
        wait = delay  # before the next attempt can start
        if isinstance(error, FetchTransientError) and error.retry_after is not None:
            gate.hold(error.retry_after)
            wait = error.retry_after
        out_of_time = deadline is not None and loop.time() + wait >= deadline
        if not error.transient or attempt >= settings.fetch_attempts or out_of_time:
            return Fetched(failure, attempt, fetched_at, time.monotonic() - started)
        await asyncio.sleep(delay)


def _outcome_of(exc: Exception) -> str:
    """What kind of end an exception raised during an attempt is."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return TIMED_OUT
    return FAILED


def _failed(
    source: Source, error: FeedlakeError, fetched_at: datetime, attempts: int, elapsed: float
) -> FetchResult:
    """A source's failed result, logged once at WARNING (``error`` is redacted already)."""
    log.warning("fetch failed for %s after %d attempt(s): %s", source.id, attempts, error)
    result = FetchResult(source.id, source.url, fetched_at, status=error.status, error=error)
    return dataclasses.replace(result, attempts=attempts, elapsed_seconds=elapsed)


def _unexpected(source: FetchTarget, what: str, exc: BaseException) -> UnexpectedError:
    """A source's error (kind ``bug``) for an exception feedlake did not raise on purpose.

    The reason names the exception; its traceback, secrets redacted, goes to a debug line for
    whoever debugs the bug.
    """
    trace = source.redact("".join(traceback.format_exception(exc)).rstrip())
    log.debug("fetch of %s: %s:\n%s", source.id, what, trace)
    return UnexpectedError(
        source.redact(f"{what} ({bug_reason(exc)})"), source_id=source.id, url=source.display_url
    )


def _as_feed_error(exc: Exception, source: FetchTarget, settings: FeedlakeSettings) -> FeedlakeError:
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


def _redacted(error: FeedlakeError, source: FetchTarget) -> FeedlakeError:
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
    source: FetchTarget,
    sendable: FeedValidators,
    settings: FeedlakeSettings,
    resolve: Resolver,
    cap: int,
    accept: str | None,
    before_redirect: RedirectCheck | None,
) -> Answer | Failure:
    headers = {"Accept-Encoding": ACCEPT_ENCODING}  # what BoundedDecoder decodes, whatever the client
    if accept is not None:
        headers["Accept"] = accept
    if sendable.etag:
        headers["If-None-Match"] = sendable.etag
    if sendable.last_modified:
        headers["If-Modified-Since"] = sendable.last_modified
    url = source.url
    # Only a chain of permanent redirects (301/308) moves a feed; one temporary hop does not.
    permanent = None
    for hop in range(MAX_REDIRECTS + 1):
        try:
            vetted = await check_fetch_url(url, settings.allow_private_networks, source.id, resolve)
        except FetchTerminalError as exc:  # malformed or refused; a failed lookup is raised, transient
            return Failure(exc, REFUSED)
        if hop and before_redirect is not None:
            stopped = await before_redirect(url)
            if stopped is not None:
                return stopped
        request = client.build_request("GET", vetted.url, headers=headers)
        with pinned_addresses(vetted.host, vetted.addresses):
            try:
                response = await client.send(request, stream=True)
            except (httpx.RemoteProtocolError, httpx.InvalidURL) as exc:
                # httpx parses a redirect's Location even when it does not follow it; a bad one is
                # the server's fault and will not get better by retrying.
                if isinstance(exc, httpx.RemoteProtocolError) and "location header" not in str(exc):
                    raise
                error = FetchTerminalError(
                    f"redirect to an invalid URL ({str(exc)[:200]})", source_id=source.id, url=url
                )
                return Failure(error, REFUSED)
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                permanent = response.status_code in PERMANENT_REDIRECTS and permanent is not False
                try:
                    url = urljoin(url, location)
                except ValueError:
                    error = FetchTerminalError(
                        f"redirect to an invalid URL {location[:200]!r}",
                        source_id=source.id,
                        url=source.display_url,
                        status=response.status_code,
                    )
                    return Failure(error, REFUSED)
                continue
            return await _answer(response, source, cap, url if permanent else None)
        finally:
            await response.aclose()
    error = FetchTerminalError(
        f"too many redirects (more than {MAX_REDIRECTS})", source_id=source.id, url=source.display_url
    )
    return Failure(error, FAILED)


async def _answer(
    response: httpx.Response, source: FetchTarget, cap: int, moved_to: str | None
) -> Answer | Failure:
    status = response.status_code
    final_url = str(response.url)
    sent = response.request.headers
    if status == 304:
        return Answer(final_url, status, None, response.headers, sent, moved_to)
    if status in TRANSIENT_STATUSES:
        retryable = FetchTransientError(
            "server answered with a retryable status",
            source_id=source.id,
            url=source.display_url,
            status=status,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
        return Failure(retryable, HTTP_STATUS, final_url, sent)
    if status >= 400:
        refused = FetchTerminalError(
            "server refused the request; check the URL",
            source_id=source.id,
            url=source.display_url,
            status=status,
        )
        return Failure(refused, HTTP_STATUS, final_url, sent)
    body = await _read_capped(response, cap, source)
    if isinstance(body, Failure):
        return dataclasses.replace(body, final_url=final_url, request_headers=sent)
    return Answer(final_url, status, body, response.headers, sent, moved_to)


def sendable_validators(validators: FeedValidators | None, source: FetchTarget, what: str) -> FeedValidators:
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


async def _read_capped(response: httpx.Response, cap: int, source: FetchTarget) -> bytes | Failure:
    # Raw bytes, decoded here layer by layer and counted as they come out (fetch.body_decoding):
    # httpx's own decoders expand a whole chunk through every layer before anything is counted.
    try:
        decoder = BoundedDecoder(response.headers.get("content-encoding", ""), cap)
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
    except FetchTerminalError as exc:
        error = FetchTerminalError(
            exc.reason, source_id=source.id, url=source.display_url, status=response.status_code
        )
        return Failure(error, TOO_LARGE if _OVER_CAP in exc.reason else FAILED)
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
