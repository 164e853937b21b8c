"""Fetch against a real local HTTP server that misbehaves on purpose."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FeedValidators, FetchResult

FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"
HITS: Counter[str] = Counter()
USER_AGENTS: dict[str, str] = {}


class MisbehavingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        HITS[self.path] += 1
        USER_AGENTS[self.path] = self.headers.get("User-Agent", "")
        route = self.path.split("?")[0]
        if route == "/ok":
            if self.headers.get("If-None-Match") == '"v1"':
                self._answer(304)
                return
            self._answer(200, FEED, {"ETag": '"v1"', "Last-Modified": "Sat, 16 Jan 2016 14:00:00 GMT"})
        elif route == "/flaky":
            self._answer(200, FEED) if HITS[self.path] >= 3 else self._answer(503)
        elif route == "/limited":
            self._answer(200, FEED) if HITS[self.path] >= 2 else self._answer(429, b"", {"Retry-After": "0"})
        elif route == "/limited-1s":
            self._answer(200, FEED) if HITS[self.path] >= 2 else self._answer(429, b"", {"Retry-After": "1"})
        elif route == "/always-500":
            self._answer(500)
        elif route == "/gone":
            self._answer(404)
        elif route == "/slow":
            time.sleep(2)
            self._answer(200, FEED)
        elif route == "/late":
            time.sleep(0.5)
            self._answer(200, FEED)
        elif route == "/huge":
            self._answer(200, b"x" * 300_000)
        elif route == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif route == "/moved":
            self._answer(301, b"", {"Location": "/ok?moved"})
        elif route == "/temp-moved":
            self._answer(302, b"", {"Location": "/ok?temp"})
        elif route == "/moved-twice":
            self._answer(308, b"", {"Location": "/moved"})
        elif route == "/to-metadata":
            self._answer(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def settings(**overrides: object) -> FeedlakeSettings:
    base = {"backoff_seconds": 0.01, "fetch_attempts": 3, "total_timeout": 1.0, "read_timeout": 1.0}
    return FeedlakeSettings().model_copy(update={**base, **overrides})


def source(name: str, base: str, suffix: str = "") -> Source:
    return Source(id=name, url=f"{base}/{name}{suffix}", name=name, publisher="p", kind="news")


def test_ok_returns_body_and_validators(server: str) -> None:
    [result] = fetch_feeds_blocking([source("ok", server, "?a")], {}, settings())
    assert result.status == 200 and result.body == FEED and result.error is None
    assert result.validators == FeedValidators('"v1"', "Sat, 16 Jan 2016 14:00:00 GMT")
    assert result.headers["content-location"] == f"{server}/ok?a"


def test_conditional_get_gives_not_modified(server: str) -> None:
    [result] = fetch_feeds_blocking([source("ok", server, "?b")], {"ok": FeedValidators('"v1"')}, settings())
    assert result.not_modified and result.body is None and result.status == 304


def test_transient_errors_are_retried_until_success(server: str) -> None:
    flaky, limited = fetch_feeds_blocking(
        [source("flaky", server, "?c"), source("limited", server, "?c")], {}, settings()
    )
    assert flaky.body == FEED and flaky.attempts == 3
    assert limited.body == FEED and limited.attempts == 2


def test_retries_are_bounded_and_reported(server: str) -> None:
    [result] = fetch_feeds_blocking([source("always-500", server, "?d")], {}, settings())
    assert result.error is not None and result.error.transient
    assert result.attempts == 3 and HITS["/always-500?d"] == 3
    assert "always-500" in str(result.error) and "HTTP 500" in str(result.error)


def test_terminal_errors_are_not_retried(server: str) -> None:
    gone, loop = fetch_feeds_blocking(
        [source("gone", server, "?e"), source("loop", server, "?e")], {}, settings()
    )
    assert gone.error is not None and not gone.error.transient and gone.status == 404
    assert HITS["/gone?e"] == 1
    assert loop.error is not None and "redirect" in loop.error.reason


def test_slow_server_times_out_without_stalling_others(server: str) -> None:
    started = time.monotonic()
    slow, ok = fetch_feeds_blocking(
        [source("slow", server, "?f"), source("ok", server, "?f")], {}, settings(fetch_attempts=1)
    )
    assert slow.error is not None and "timed out" in slow.error.reason
    assert ok.body == FEED
    assert time.monotonic() - started < 1.9


def test_each_result_is_handed_on_as_soon_as_it_is_final(server: str) -> None:
    started = time.monotonic()
    handed: list[tuple[str, float]] = []
    results = fetch_feeds_blocking(
        [source("late", server, "?k"), source("ok", server, "?k"), source("gone", server, "?k")],
        {},
        settings(fetch_attempts=1),
        on_result=lambda r: handed.append((r.source_id, time.monotonic() - started)),
    )
    assert [r.source_id for r in results] == ["late", "ok", "gone"]  # the return keeps source order
    # Each result exactly once, failures included, the late one last and only once it is done.
    assert sorted(name for name, _ in handed) == ["gone", "late", "ok"] and handed[-1][0] == "late"
    at = dict(handed)
    assert at["ok"] < 0.4 <= at["late"]


def test_body_over_the_cap_is_refused(server: str) -> None:
    [result] = fetch_feeds_blocking([source("huge", server, "?g")], {}, settings(max_body_bytes=100_000))
    assert result.error is not None and "cap" in result.error.reason and result.body is None


def test_connection_refused_is_transient() -> None:
    [result] = fetch_feeds_blocking(
        [Source(id="down", url="http://127.0.0.1:9/feed", name="d", publisher="p", kind="news")],
        {},
        settings(fetch_attempts=2),
    )
    assert result.error is not None and result.error.transient and result.attempts == 2


def test_redirects_are_followed_and_the_final_url_kept(server: str) -> None:
    moved, twice, temporary = fetch_feeds_blocking(
        [
            source("moved", server, "?h"),
            source("moved-twice", server, "?h"),
            source("temp-moved", server, "?h"),
        ],
        {},
        settings(),
    )
    assert moved.body == FEED and moved.final_url == f"{server}/ok?moved"
    assert moved.headers["content-location"] == f"{server}/ok?moved"
    # Only an all-permanent chain (301/308) moves the feed; a temporary hop does not.
    assert moved.moved_to == f"{server}/ok?moved" and twice.moved_to == f"{server}/ok?moved"
    assert temporary.body == FEED and temporary.moved_to is None


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    [result] = fetch_feeds_blocking([source("ok", server, "?i")], {}, settings(allow_private_networks=False))
    assert result.error is not None and not result.error.transient
    assert "loopback" in result.error.reason and "FEEDLAKE_ALLOW_PRIVATE_NETWORKS" in result.error.reason
    assert HITS["/ok?i"] == 0, "refused before any request was sent"


def test_redirect_to_cloud_metadata_is_refused_even_when_private_is_allowed(server: str) -> None:
    [result] = fetch_feeds_blocking([source("to-metadata", server, "?j")], {}, settings())
    assert result.error is not None and "cloud metadata" in result.error.reason
    assert result.attempts == 1


def test_non_http_schemes_are_refused() -> None:
    feed = Source(id="f", url="http://x.invalid/", name="f", publisher="p", kind="news")
    for url in ("ftp://example.org/feed.xml", "file:///etc/passwd"):
        [result] = fetch_feeds_blocking([Source(**{**feed.__dict__, "url": url})], {}, settings())
        assert result.error is not None and "absolute http(s) URL" in result.error.reason


def test_user_agent_names_feedlake_and_the_contact_url(server: str) -> None:
    fetch_feeds_blocking(
        [source("ok", server, "?ua")], {}, settings(contact_url="https://example.org/contact")
    )
    assert USER_AGENTS["/ok?ua"] == "feedlake/0.1 (+https://example.org/contact)"


def test_a_failing_result_handler_is_that_sources_error_not_the_runs(server: str) -> None:
    handled: list[tuple[str, str | None]] = []

    def on_result(result: FetchResult) -> None:
        if result.source_id == "ok" and result.error is None:
            raise KeyError("the handler lost its table")
        handled.append((result.source_id, result.error.kind if result.error else None))

    ok, late = fetch_feeds_blocking(
        [source("ok", server, "?handler"), source("late", server, "?handler")], {}, settings(), on_result
    )
    assert late.error is None and late.body == FEED
    assert ok.error is not None and ok.error.kind == "bug" and ok.body is None
    assert "KeyError: 'the handler lost its table'" in ok.error.reason
    # The handler heard of the source's failure in place of the result it could not take.
    assert sorted(handled) == [("late", None), ("ok", "bug")]
