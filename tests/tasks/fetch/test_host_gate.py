"""Per-host politeness: minimum gap, Retry-After holding one host back and not the others."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.fetch.host_gate import HostGate
from feedlake.tasks.sources.catalog import Source
from tests.tasks.fetch.test_client import FEED, MisbehavingHandler, settings


async def enter_times(gate: HostGate, count: int) -> list[float]:
    times = []
    for _ in range(count):
        async with gate:
            times.append(time.monotonic())
    return times


def test_min_gap_spaces_requests_to_one_host() -> None:
    times = asyncio.run(enter_times(HostGate(concurrency=4, min_gap=0.1), 5))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.095


def test_hold_keeps_the_host_waiting() -> None:
    async def held() -> float:
        gate = HostGate(concurrency=1, min_gap=0)
        gate.hold(0.3)
        started = time.monotonic()
        async with gate:
            return time.monotonic() - started

    assert asyncio.run(held()) >= 0.29


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingHandler) for _ in range(2)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_retry_after_holds_back_that_host_only(two_hosts: tuple[str, str]) -> None:
    limited_host, other_host = two_hosts

    def feed(name: str, url: str) -> Source:
        return Source(id=name, url=url, name=name, publisher="p", kind="news")

    sources = [
        feed("limited", f"{limited_host}/limited-1s"),
        feed("same-host", f"{limited_host}/ok?same"),
        feed("other-host", f"{other_host}/ok?other"),
    ]
    # The deadline covers the Retry-After wait too, so it must leave room for the second attempt.
    relaxed = settings(per_host_concurrency=1, total_timeout=3.0)
    results = {r.source_id: r for r in fetch_feeds_blocking(sources, {}, relaxed)}
    assert results["limited"].body == FEED and results["limited"].attempts == 2
    assert results["limited"].elapsed_seconds >= 0.95
    assert results["same-host"].body == FEED and results["same-host"].elapsed_seconds >= 0.95
    assert results["other-host"].body == FEED and results["other-host"].elapsed_seconds < 0.5
