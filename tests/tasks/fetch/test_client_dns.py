"""DNS lookups of the fetch: hanging ones cost their source its deadline, never the others their lookups."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from feedlake.tasks.fetch.client import fetch_feeds
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult
from tests.support.hostile_server import GOOD, hostile_server

HANGING = ".hang.test"
GOOD_HOST = "good.test"
# The default executor of a 2-core machine: min(32, cpu_count + 4) threads.
DEFAULT_EXECUTOR_THREADS = 6


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with hostile_server() as url:
        yield url


@pytest.fixture
def hanging_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The system resolver, except that ``*.hang.test`` never answers and ``good.test`` is loopback.

    Yields the hosts looked up. Hanging lookups are released when the test ends.
    """
    real = socket.getaddrinfo
    release = threading.Event()
    asked: list[str] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> object:
        asked.append(host)
        if host.endswith(HANGING):
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host == GOOD_HOST:
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked
    release.set()


def feed(name: str, url: str) -> Source:
    return Source(id=name, url=url, name=name, publisher="p", kind="news")


def test_hanging_lookups_time_out_their_sources_while_the_others_resolve(
    base: str, hanging_dns: list[str]
) -> None:
    port = int(base.rsplit(":", 1)[1])
    # More hosts hanging than the default executor has threads: lookups there would all queue.
    hanging = [
        feed(f"hang-{n}", f"http://h{n}{HANGING}:{port}/good") for n in range(DEFAULT_EXECUTOR_THREADS + 2)
    ]
    good = [feed(f"good-{n}", f"http://{GOOD_HOST}:{port}/good?dns-{n}") for n in range(3)]
    limits = FeedlakeSettings().model_copy(
        update={"total_timeout": 1.0, "fetch_attempts": 1, "concurrency": 64, "per_host_min_gap_seconds": 0}
    )

    async def run() -> list[FetchResult]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(DEFAULT_EXECUTOR_THREADS))
        # The hanging lookups start first and hold their threads before the good ones ask.
        return await fetch_feeds([*hanging, *good], {}, limits)

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    by_id = {r.source_id: r for r in results}
    for source in good:
        result = by_id[source.id]
        assert result.error is None and result.body == GOOD, result.error
    for source in hanging:
        error = by_id[source.id].error
        assert error is not None and error.transient and "deadline" in error.reason, error
    assert sum(host.endswith(HANGING) for host in hanging_dns) == len(hanging)
    assert elapsed < 2 * 1.0 + 3.0, f"the run took {elapsed:.1f}s for a 1s deadline"
