"""Article pages against a real local press site: every outcome a status, robots.txt honoured, connect_to."""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.fetch.pages import PAGE_ACCEPT, PageRequest, PageResult, fetch_pages
from feedlake.tasks.fetch.robots import RobotsCache
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FeedValidators
from tests.support.threaded_http import QuietHandler, serve_handler
from tests.tasks.fetch.test_client_hostile import write_self_signed

ARTICLE = (
    b"<html lang='en'><body><article><h1>Airmen deploy</h1><p>" + b"Full story. " * 200 + b"</p></article>"
)
ETAG = '"article-v1"'
MODIFIED = "Tue, 04 Mar 2025 10:00:00 GMT"
ROBOTS = b"User-agent: *\nDisallow: /private/\n"
PRESS = "www.example-press.test"


class PressHandler(QuietHandler):
    """A press site: articles, robots.txt, and pages that misbehave. Counts requests per path."""

    hits: Counter[str]
    seen: dict[str, dict[str, str]]
    busy: Counter[str]
    peak: Counter[str]
    lock: threading.Lock
    robots_status = 200

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        with self.lock:
            self.hits[path] += 1
            self.seen[path] = dict(self.headers.items())
        route = path.split("?")[0]
        if route == "/robots.txt":
            self.send_body(self.robots_status, ROBOTS, {"Content-Type": "text/plain"})
        elif route.startswith(("/news/", "/private/")):
            self._article()
        elif route == "/busy":
            self._busy()
        elif route == "/missing":
            self.send_body(404, b"gone")
        elif route == "/limited":
            limited = self.hits[path] == 1
            self.send_body(429, b"", {"Retry-After": "1"}) if limited else self._article()
        elif route == "/slow":
            time.sleep(2)
            self._article()
        elif route == "/huge":
            self.send_body(200, b"<html>" + b"x" * 50_000, {"Content-Type": "text/html"})
        elif route == "/zipped-huge":
            self.send_body(200, gzip.compress(b"x" * 500_000), {"Content-Encoding": "gzip"})
        elif route == "/to-metadata":
            self.send_body(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif route == "/to-private":
            self.send_body(301, b"", {"Location": "/private/moved"})
        elif route == "/to-news":
            self.send_body(302, b"", {"Location": "/news/landed"})
        else:
            self.send_body(404, b"")

    def _article(self) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.send_body(304, b"", {"ETag": ETAG})
            return
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Language": "en",
            "Content-Encoding": "gzip",
            "ETag": ETAG,
            "Last-Modified": MODIFIED,
            "Set-Cookie": "session=abc",
            "Link": '<https://example-press.test/a>; rel="canonical"',
        }
        self.send_body(200, gzip.compress(ARTICLE), headers)

    def _busy(self) -> None:
        host = self.headers.get("Host", "")
        with self.lock:
            self.busy[host] += 1
            self.peak[host] = max(self.peak[host], self.busy[host])
            self.peak["all"] = max(self.peak["all"], sum(self.busy.values()))
        time.sleep(0.2)
        with self.lock:
            self.busy[host] -= 1
        self.send_body(200, ARTICLE, {"Content-Type": "text/html"})


def press_handler(robots_status: int = 200) -> type[PressHandler]:
    """A handler class with its own counters (one per server)."""
    state = {"hits": Counter(), "seen": {}, "busy": Counter(), "peak": Counter(), "lock": threading.Lock()}
    return type("Press", (PressHandler,), {**state, "robots_status": robots_status})


Press = tuple[type[PressHandler], str]


@pytest.fixture
def press() -> Iterator[Press]:
    handler = press_handler()
    with serve_handler(handler) as base:
        yield handler, base


def settings(**overrides: object) -> FeedlakeSettings:
    values = {"backoff_seconds": 0.01, "fetch_attempts": 2, "total_timeout": 3.0, "read_timeout": 3.0}
    return FeedlakeSettings().model_copy(update={**values, **overrides})


def page(url: str, n: int = 0, validators: FeedValidators | None = None) -> PageRequest:
    return PageRequest("press", f"article-{n}", url, validators or FeedValidators())


def by_path(results: list[PageResult]) -> dict[str, PageResult]:
    return {r.request.url.split("/", 3)[3]: r for r in results}


def test_an_article_page_comes_with_its_headers_validators_and_what_was_sent(press: Press) -> None:
    handler, base = press
    [result] = fetch_pages([page(f"{base}/news/1")], settings(contact_url="https://example.org/c"))
    assert result.status == "ok" and result.reason is None and result.http_status == 200
    assert result.body == ARTICLE and result.final_url == f"{base}/news/1"
    assert result.validators == FeedValidators(ETAG, MODIFIED)
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    assert result.headers["content-language"] == "en" and result.headers["etag"] == ETAG
    assert result.headers["last-modified"] == MODIFIED and "canonical" in result.headers["link"]
    # The body is decoded, so the headers that framed the raw transfer are gone; so is the cookie.
    assert not {"content-encoding", "content-length", "set-cookie"} & set(result.headers)
    sent = handler.seen["/news/1"]
    assert (
        result.request_headers["user-agent"] == sent["User-Agent"] == "feedlake/0.1 (+https://example.org/c)"
    )
    assert result.request_headers["accept"] == sent["Accept"] == PAGE_ACCEPT
    assert result.request_headers["host"] == base.removeprefix("http://")


def test_a_conditional_get_gives_not_modified(press: Press) -> None:
    handler, base = press
    [result] = fetch_pages([page(f"{base}/news/2", validators=FeedValidators(ETAG, MODIFIED))], settings())
    assert result.status == "not_modified" and result.body is None and result.http_status == 304
    assert result.validators == FeedValidators(ETAG, MODIFIED)
    assert handler.seen["/news/2"]["If-None-Match"] == ETAG
    assert handler.seen["/news/2"]["If-Modified-Since"] == MODIFIED


def test_each_failure_is_its_pages_status_and_the_others_land(press: Press) -> None:
    handler, base = press
    host = base.removeprefix("http://")
    names = ["missing", "slow", "huge", "zipped-huge", "to-metadata", "limited", "news/3", "news/4"]
    handed: list[str] = []

    def on_result(result: PageResult) -> None:
        if result.request.url.endswith("/news/4") and result.status == "ok":
            raise KeyError("the handler lost its table")
        handed.append(result.status)

    results = fetch_pages(
        [page(f"{base}/{name}", n) for n, name in enumerate(names)],
        settings(total_timeout=1.5, page_max_bytes=10_000),
        on_result=on_result,
    )
    assert [r.request.article_id for r in results] == [f"article-{n}" for n in range(len(names))]
    got = by_path(results)
    assert got["missing"].status == "http_404" and got["missing"].http_status == 404
    assert got["missing"].reason == f"{host} answered HTTP 404" and handler.hits["/missing"] == 1
    assert got["slow"].status == "timeout" and host in (got["slow"].reason or "")
    for name in ("huge", "zipped-huge"):
        assert got[name].status == "too_large" and got[name].body is None
        assert "FEEDLAKE_PAGE_MAX_BYTES" in (got[name].reason or "")
    assert got["to-metadata"].status == "refused" and "cloud metadata" in (got["to-metadata"].reason or "")
    # 429 with Retry-After: retried once the second has passed, like a feed.
    assert got["limited"].status == "ok" and got["limited"].attempts == 2
    assert got["limited"].elapsed_seconds >= 0.95
    assert got["news/3"].status == "ok" and got["news/3"].body == ARTICLE
    assert got["news/4"].status == "error" and "KeyError" in (got["news/4"].reason or "")
    assert sorted(handed) == sorted(r.status for r in results), "every page's final result was handed on"


def test_a_page_robots_txt_disallows_is_never_requested(press: Press) -> None:
    handler, base = press
    cache = RobotsCache(settings())
    first = fetch_pages([page(f"{base}/private/1", 1), page(f"{base}/news/5", 2)], settings(), robots=cache)
    second = fetch_pages(
        [page(f"{base}/private/2", 3), page(f"{base}/to-private", 4)], settings(), robots=cache
    )
    private, news = first
    assert private.status == "robots_disallowed" and private.body is None
    assert private.reason == f"{base.removeprefix('http://')}: robots.txt disallows /private/1 for feedlake"
    assert news.status == "ok"
    # A redirect into a disallowed path stops before it: the target is never requested either.
    assert [r.status for r in second] == ["robots_disallowed", "robots_disallowed"]
    assert not any(path.startswith("/private/") for path in handler.hits)
    assert handler.hits["/robots.txt"] == 1, "one robots.txt fetch for the host, across both runs"


def test_a_failing_robots_txt_disallows_the_host_for_now() -> None:
    handler = press_handler(robots_status=503)
    with serve_handler(handler) as base:
        results = fetch_pages([page(f"{base}/news/{n}", n) for n in range(5)], settings())
    assert {r.status for r in results} == {"robots_disallowed"}
    assert all("robots.txt unreachable (HTTP 503)" in (r.reason or "") for r in results)
    assert handler.hits["/robots.txt"] == 2 and sum(handler.hits.values()) == 2  # retried once, no page asked


def test_a_loopback_page_is_refused_unless_allowed(press: Press) -> None:
    handler, base = press
    refused, malformed = fetch_pages(
        [page(f"{base}/news/6"), page("http://exa mple.test/news", 1)], settings(allow_private_networks=False)
    )
    assert refused.status == "refused" and "FEEDLAKE_ALLOW_PRIVATE_NETWORKS" in (refused.reason or "")
    assert malformed.status == "refused" and "not a valid host name" in (malformed.reason or "")
    assert not handler.hits, "neither robots.txt nor the page was requested"


def test_connect_to_serves_a_named_host_from_the_local_server(press: Press) -> None:
    handler, base = press
    port = base.rsplit(":", 1)[1]
    rules = settings(connect_to=f"{PRESS}:80=127.0.0.1:{port}, feeds.example-press.test:80=127.0.0.1:{port}")
    [result] = fetch_pages([page(f"http://{PRESS}/to-news")], rules)
    assert result.status == "ok" and result.final_url == f"http://{PRESS}/news/landed"
    assert handler.seen["/news/landed"]["Host"] == PRESS and handler.seen["/robots.txt"]["Host"] == PRESS
    # Feeds go the same way.
    feed = Source(
        id="press", url="http://feeds.example-press.test/news/feed", name="p", publisher="p", kind="news"
    )
    [fetched] = fetch_feeds_blocking([feed], {}, rules)
    assert fetched.error is None and fetched.body == ARTICLE
    assert handler.seen["/news/feed"]["Host"] == "feeds.example-press.test"
    # The guard still vets the address connect_to names.
    [refused] = fetch_pages(
        [page(f"http://{PRESS}/news/7")], rules.model_copy(update={"allow_private_networks": False})
    )
    assert refused.status == "refused" and "loopback" in (refused.reason or "")
    assert "/news/7" not in handler.hits


def test_connect_to_keeps_the_tls_server_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_file, cert_file, key_file = write_self_signed(tmp_path, PRESS)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # httpx trusts only this certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    handler = press_handler()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rules = settings(connect_to=f"{PRESS}:443=127.0.0.1:{server.server_address[1]}")
        [result] = fetch_pages([page(f"https://{PRESS}/news/8")], rules)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "ok" and result.body == ARTICLE  # the certificate matched the name
    assert handler.seen["/news/8"]["Host"] == PRESS


@pytest.mark.parametrize(
    "value", ["www.example.test=127.0.0.1:80", "a.test:80=localhost:80", "127.0.0.1:80=10.0.0.1:80"]
)
def test_a_malformed_connect_to_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="FEEDLAKE_CONNECT_TO entry"):
        fetch_pages([page("http://a.test/")], settings(connect_to=value))


def test_pages_of_one_host_keep_to_its_concurrency(press: Press) -> None:
    handler, base = press
    port = base.rsplit(":", 1)[1]
    hosts = ["a.example-press.test", "b.example-press.test"]
    rules = settings(connect_to=",".join(f"{h}:80=127.0.0.1:{port}" for h in hosts), per_host_concurrency=2)
    requests = [page(f"http://{host}/busy?{n}", n) for n in range(6) for host in hosts]
    results = fetch_pages(requests, rules)
    assert {r.status for r in results} == {"ok"}
    assert handler.peak["a.example-press.test"] == handler.peak["b.example-press.test"] == 2
    assert handler.peak["all"] > 2, "the two hosts are fetched side by side"


def test_many_slow_pages_end_in_bounded_time(press: Press) -> None:
    _handler, base = press
    started = time.monotonic()
    results = fetch_pages(
        [page(f"{base}/slow?{n}", n) for n in range(6)],
        settings(total_timeout=1.0, fetch_attempts=1, per_host_concurrency=1),
    )
    elapsed = time.monotonic() - started
    assert {r.status for r in results} == {"timeout"}
    assert elapsed < 2 * 1.0 + 3.0, f"the run took {elapsed:.1f}s for a 1s deadline"
    waited = [r for r in results if "waiting for the host" in (r.reason or "")]
    assert len(waited) >= 3 and all("FEEDLAKE_PAGE_CONCURRENCY" in (r.reason or "") for r in waited)
