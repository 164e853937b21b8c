"""robots.txt against a real local server: the rules for feedlake, failures, one fetch per origin."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from feedlake.tasks.fetch.robots import ROBOTS_MAX_BYTES, RobotsCache, RobotsVerdict
from feedlake.tasks.settings import FeedlakeSettings
from tests.support.threaded_http import QuietHandler, serve_handler

TEXT = {"Content-Type": "text/plain"}
RULES = (
    b"# feedlake may read the news, not the drafts; everyone else nothing\n"
    b"User-agent: feedlake\nDisallow: /drafts/\n\nUser-agent: *\nDisallow: /\n"
)
SLOW = -1  # a robots.txt status meaning: answer after the tests' deadline


class RobotsHandler(QuietHandler):
    """Answers /robots.txt with ``answer``; counts every request by path."""

    hits: Counter[str]
    answer: tuple[int, bytes, dict[str, str]]

    def do_GET(self) -> None:  # noqa: N802
        self.hits[self.path] += 1
        status, body, headers = self.answer
        if self.path == "/robots.txt" and status == SLOW:
            time.sleep(2)
            self.send_body(200, RULES, TEXT)
        elif self.path == "/robots.txt":
            self.send_body(status, body, headers)
        elif self.path == "/moved-robots.txt":
            self.send_body(200, RULES, TEXT)
        else:
            self.send_body(404, b"")


Site = Callable[..., tuple[Counter[str], str]]


@pytest.fixture
def site() -> Iterator[Site]:
    """Start a server whose robots.txt gives (status, body, headers); return (hits by path, base URL)."""
    with ExitStack() as stack:

        def start(
            status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> tuple[Counter[str], str]:
            handler = type(
                "Site", (RobotsHandler,), {"hits": Counter(), "answer": (status, body, headers or TEXT)}
            )
            return handler.hits, stack.enter_context(serve_handler(handler))

        yield start


def settings(**overrides: object) -> FeedlakeSettings:
    values = {"backoff_seconds": 0.01, "fetch_attempts": 2, "total_timeout": 1.0, "read_timeout": 1.0}
    return FeedlakeSettings().model_copy(update={**values, **overrides})


def check(cache: RobotsCache, *urls: str) -> list[RobotsVerdict]:
    """Check every URL at once, in one event loop (one run)."""

    async def run() -> list[RobotsVerdict]:
        return list(await asyncio.gather(*(cache.check(url) for url in urls)))

    return asyncio.run(run())


def test_the_feedlake_group_applies_not_the_catch_all(site: Site) -> None:
    hits, base = site(200, RULES)
    news, draft = check(RobotsCache(settings()), f"{base}/news/1", f"{base}/drafts/2")
    assert news == RobotsVerdict(True)
    assert not draft.allowed and not draft.refused and draft.reason is not None
    assert draft.reason == f"{base.removeprefix('http://')}: robots.txt disallows /drafts/2 for feedlake"
    assert hits == Counter({"/robots.txt": 1}), "one fetch for both checks"


def test_a_missing_robots_txt_allows_everything(site: Site) -> None:
    hits, base = site(404)
    assert all(v.allowed for v in check(RobotsCache(settings()), f"{base}/news/1", f"{base}/drafts/2"))
    assert hits["/robots.txt"] == 1


@pytest.mark.parametrize(("status", "shown"), [(503, "HTTP 503"), (429, "HTTP 429"), (500, "HTTP 500")])
def test_an_unreachable_robots_txt_disallows_everything_for_now(site: Site, status: int, shown: str) -> None:
    hits, base = site(status)
    cache = RobotsCache(settings())
    [verdict] = check(cache, f"{base}/news/1")
    assert not verdict.allowed and not verdict.refused and verdict.reason is not None
    assert f"robots.txt unreachable ({shown})" in verdict.reason and "RFC 9309" in verdict.reason
    assert hits["/robots.txt"] == 2, "retried like a feed (fetch_attempts=2)"
    # The verdict is kept for a while: no new request for the next page of the host.
    [again] = check(cache, f"{base}/news/2")
    assert not again.allowed and hits["/robots.txt"] == 2


def test_a_robots_txt_that_times_out_disallows(site: Site) -> None:
    _hits, base = site(SLOW)
    started = time.monotonic()
    [verdict] = check(RobotsCache(settings(fetch_attempts=1)), f"{base}/news/1")
    assert not verdict.allowed and verdict.reason is not None and "timed out" in verdict.reason
    assert time.monotonic() - started < 1.9


def test_concurrent_checks_share_one_fetch_which_lasts_the_cache_lifetime(site: Site) -> None:
    hits, base = site(200, RULES)
    cache = RobotsCache(settings(robots_cache_seconds=0.5))
    verdicts = check(cache, *(f"{base}/news/{n}" for n in range(20)))
    assert all(v.allowed for v in verdicts) and hits["/robots.txt"] == 1
    # A second run (another event loop) uses the same rules while they last...
    assert check(cache, f"{base}/drafts/1")[0].allowed is False and hits["/robots.txt"] == 1
    time.sleep(0.6)
    # ... and fetches them again once they are older than robots_cache_seconds.
    assert check(cache, f"{base}/news/1")[0].allowed and hits["/robots.txt"] == 2


def test_robots_txt_redirects_are_followed(site: Site) -> None:
    hits, base = site(301, b"", {"Location": "/moved-robots.txt"})
    news, draft = check(RobotsCache(settings()), f"{base}/news/1", f"{base}/drafts/1")
    assert news.allowed and not draft.allowed
    assert hits["/moved-robots.txt"] == 1


def test_a_robots_txt_past_the_size_limit_disallows(site: Site) -> None:
    huge = b"User-agent: *\n" + b"Disallow: /x\n" * (ROBOTS_MAX_BYTES // 12 + 10)
    _hits, base = site(200, huge)
    [verdict] = check(RobotsCache(settings()), f"{base}/news/1")
    assert (
        not verdict.allowed
        and verdict.reason is not None
        and f"larger than {ROBOTS_MAX_BYTES} bytes" in verdict.reason
    )


def test_a_byte_order_mark_does_not_hide_the_first_group(site: Site) -> None:
    _hits, base = site(200, b"\xef\xbb\xbfUser-agent: feedlake\nDisallow: /\n")
    assert not check(RobotsCache(settings()), f"{base}/news/1")[0].allowed


def test_a_refused_origin_is_refused_without_a_request(site: Site) -> None:
    hits, base = site(200, RULES)
    [verdict] = check(RobotsCache(settings(allow_private_networks=False)), f"{base}/news/1")
    assert not verdict.allowed and verdict.refused and verdict.reason is not None
    assert "loopback" in verdict.reason and not hits


def test_allowed_works_on_its_own(site: Site) -> None:
    _hits, base = site(200, RULES)

    async def run() -> tuple[bool, bool]:
        cache = RobotsCache(settings())
        return await cache.allowed(f"{base}/news/1"), await cache.allowed(f"{base}/drafts/1")

    assert asyncio.run(run()) == (True, False)
