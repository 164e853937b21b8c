"""robots.txt per host (RFC 9309), cached, read with protego.

An article page is fetched only when the robots.txt of its origin (scheme, host, port) allows it for
the product token ``feedlake``. The robots.txt is fetched with the feed fetcher's machinery
(``fetch.client.fetch_with_retries``: SSRF guard on every hop, pinned connections, redirects
followed up to five hops, retries, the one deadline) and kept for ``robots_cache_seconds``;
concurrent checks of one origin share one fetch. What its answer means (RFC 9309, 2.3.1):

- 2xx: the rules in the file (protego, the Scrapy project's parser, reads them);
- 4xx other than 429 ("unavailable"): no rules, every path allowed;
- 5xx, 429, a timeout, a connection or DNS failure, a body past ``ROBOTS_MAX_BYTES`` ("unreachable"):
  every path disallowed for now. That verdict is kept ``UNREACHABLE_CACHE_SECONDS`` at most, so a
  host that was down is asked again soon; the pages it disallowed are tried on a later poll;
- a robots.txt URL the SSRF guard refuses: disallowed, marked ``refused`` (the page would be too).

Robots fetches do not pass a host's gate: a page holds its host's gate while it checks the robots.txt
of a redirect's target, so robots fetches waiting on gates could wait on each other in a cycle
until their deadlines. They have their own concurrency limit instead, and after fetching one the
page's gate is held back by ``per_host_min_gap_seconds`` so the page request keeps its distance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx
from protego import Protego

from feedlake.tasks.errors import FetchTerminalError
from feedlake.tasks.fetch.client import (
    HTTP_STATUS,
    REFUSED,
    TOO_LARGE,
    Failure,
    PlainTarget,
    build_client,
    fetch_with_retries,
    shown_host,
)
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.fetch.url_guard import Resolver, parse_fetch_url, resolve_host
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.values import FeedValidators

log = logging.getLogger(__name__)

# The product token robots.txt groups are matched against (RFC 9309, 2.2.1).
USER_AGENT_TOKEN = "feedlake"
# RFC 9309 asks parsers to read at least 500 KiB; a larger file is treated as unreachable.
ROBOTS_MAX_BYTES = 512 * 1024
# How long an unreachable robots.txt disallows its host before it is asked again.
UNREACHABLE_CACHE_SECONDS = 300.0
# Origins remembered at most; the oldest entry goes first (a long-running poller sees many hosts).
MAX_ORIGINS = 4096
ROBOTS_ACCEPT = "text/plain, */*;q=0.5"


@dataclass(frozen=True)
class RobotsVerdict:
    """Whether a URL may be fetched, and why not when it may not."""

    allowed: bool
    reason: str | None = None  # names the host
    refused: bool = False  # the robots.txt URL itself was refused by the SSRF guard


@dataclass(frozen=True)
class _Rules:
    """What one origin's robots.txt said, until ``expires`` (time.monotonic)."""

    parser: Protego | None  # None: no rules (allow all), unless ``blocked``
    blocked: str | None  # why every path is disallowed for now (robots.txt unreachable or refused)
    refused: bool
    expires: float


class RobotsCache:
    """The robots.txt rules of every origin asked about, each fetched once per cache lifetime.

    One cache may serve many runs (``fetch_pages`` calls, each with its own event loop): the rules
    are plain data; the locks and the concurrency limit belong to the running loop. Not thread-safe:
    share one between the runs of one thread, not between threads.
    """

    def __init__(self, settings: FeedlakeSettings) -> None:
        self._settings = settings
        self._rules: dict[str, _Rules] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(settings.page_concurrency)
        self.fetches = 0  # robots.txt fetches made (for the stage's counts)

    async def allowed(self, url: str, client: httpx.AsyncClient | None = None) -> bool:
        """Whether ``url`` may be fetched by feedlake (fetching its robots.txt if not cached)."""
        return (await self.check(url, client)).allowed

    async def check(
        self,
        url: str,
        client: httpx.AsyncClient | None = None,
        *,
        gate: HostGate | None = None,
        resolve: Resolver = resolve_host,
    ) -> RobotsVerdict:
        """The verdict for ``url``; a malformed URL is refused.

        ``client`` should be the fetch's own (``fetch.client.build_client``); without one a client
        is made for this check. ``gate``, the page's host gate, is held back by the minimum gap
        after a robots.txt request.
        """
        try:
            parsed, host, _port = parse_fetch_url(url)
        except FetchTerminalError as exc:
            return RobotsVerdict(False, f"{shown_host(url)}: {exc.reason}", refused=True)
        robots_url = str(httpx.URL(scheme=parsed.scheme, host=host, port=parsed.port, path="/robots.txt"))
        origin = robots_url.removesuffix("/robots.txt")
        rules = self._rules.get(origin)
        if rules is None or rules.expires <= time.monotonic():
            async with self._lock(origin):
                # Another check of this origin may have fetched it while this one waited.
                rules = self._rules.get(origin)
                if rules is None or rules.expires <= time.monotonic():
                    rules = await self._fetch(robots_url, client, resolve)
                    self._remember(origin, rules)
                    if gate is not None:
                        gate.hold(self._settings.per_host_min_gap_seconds)
        return _verdict(rules, url, shown_host(url))

    def _lock(self, origin: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new run (event loop): the previous loop's locks and slots cannot be awaited here.
            self._loop, self._locks = loop, {}
            self._slots = asyncio.Semaphore(self._settings.page_concurrency)
        lock = self._locks.get(origin)
        if lock is None:
            lock = self._locks[origin] = asyncio.Lock()
        return lock

    def _remember(self, origin: str, rules: _Rules) -> None:
        self._rules.pop(origin, None)
        self._rules[origin] = rules
        while len(self._rules) > MAX_ORIGINS:
            del self._rules[next(iter(self._rules))]

    async def _fetch(self, robots_url: str, client: httpx.AsyncClient | None, resolve: Resolver) -> _Rules:
        settings = self._settings
        http = client if client is not None else build_client(settings, connections=1)
        try:
            fetched = await fetch_with_retries(
                http,
                PlainTarget("robots.txt", robots_url),
                settings,
                validators=FeedValidators(),
                # Its own gate: see the module docstring for why not the host's.
                gate=HostGate(1, 0.0),
                limit=self._slots,
                resolve=resolve,
                cap=ROBOTS_MAX_BYTES,
                accept=ROBOTS_ACCEPT,
            )
        finally:
            if client is None:
                await http.aclose()
        self.fetches += 1
        now = time.monotonic()
        lifetime = now + settings.robots_cache_seconds
        unreachable = now + min(settings.robots_cache_seconds, UNREACHABLE_CACHE_SECONDS)
        answer = fetched.outcome
        if isinstance(answer, Failure):
            return _failed_rules(answer, robots_url, lifetime, unreachable)
        if answer.body is None:  # a 304 to a request that was not conditional
            return _Rules(None, f"robots.txt answered HTTP {answer.status}", False, unreachable)
        text = answer.body.decode("utf-8", errors="replace").removeprefix("\ufeff")
        log.debug("robots: %s read (%d bytes)", robots_url, len(answer.body))
        return _Rules(Protego.parse(text), None, False, lifetime)


def _failed_rules(failure: Failure, robots_url: str, lifetime: float, unreachable: float) -> _Rules:
    """The rules a failed robots.txt fetch stands for (RFC 9309, 2.3.1.3 and 2.3.1.4)."""
    error = failure.error
    status = error.status
    if failure.outcome == HTTP_STATUS and status is not None and 400 <= status < 500 and status != 429:
        log.debug("robots: %s answered HTTP %d: every path allowed", robots_url, status)
        return _Rules(None, None, False, lifetime)
    if failure.outcome == REFUSED and error.url == robots_url:
        # The guard refused the origin itself: the page is refused too, for the same reason.
        return _Rules(None, error.reason, True, unreachable)
    if failure.outcome == HTTP_STATUS:
        why = f"HTTP {status}"
    elif failure.outcome == TOO_LARGE:
        why = f"larger than {ROBOTS_MAX_BYTES} bytes"
    else:
        why = error.reason
    log.info("robots: %s unreachable (%s): every path disallowed for now", robots_url, why)
    return _Rules(None, f"robots.txt unreachable ({why})", False, unreachable)


def _verdict(rules: _Rules, url: str, host: str) -> RobotsVerdict:
    if rules.blocked is not None:
        if rules.refused:
            return RobotsVerdict(False, f"{host}: {rules.blocked}", refused=True)
        return RobotsVerdict(
            False, f"{host}: {rules.blocked}; RFC 9309 reads that as disallow all, asked again later"
        )
    if rules.parser is None or rules.parser.can_fetch(url, USER_AGENT_TOKEN):
        return RobotsVerdict(True)
    path = httpx.URL(url).raw_path.decode("ascii", errors="replace")
    return RobotsVerdict(False, f"{host}: robots.txt disallows {path[:200]} for {USER_AGENT_TOKEN}")
