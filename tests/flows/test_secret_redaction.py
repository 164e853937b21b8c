"""A ``${FEEDLAKE_VAR_*}`` secret in a feed URL never reaches a log line, an error, health or the lake."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from feedlake.tasks.fetch.client import fetch_feeds
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import check_sources_text
from feedlake.tasks.values import FetchResult
from tests.conftest import CASES
from tests.support.threaded_http import QuietHandler, serve_handler

SECRET = "s3cr3t-t0ken/+value"
VARIABLES = {"FEEDLAKE_VAR_TOKEN": SECRET}
QUERY = "token=${FEEDLAKE_VAR_TOKEN}"
GOOD = (CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml").read_bytes()


class SecretEchoingHandler(QuietHandler):
    """Feeds that fail while quoting the request's query (and so the secret) back."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        route, _, query = self.path.partition("?")
        token = parse_qs(query).get("token", [""])[0]
        if route == "/good":
            self.send_body(200, GOOD)
        elif route == "/to-metadata":
            # A refused address on the second hop, its URL carrying the secret.
            self.send_body(302, b"", {"Location": f"http://169.254.169.254/latest?{query}"})
        elif route == "/to-nowhere":
            self.send_body(302, b"", {"Location": f"http://nowhere.invalid/feed?{query}"})
        elif route == "/to-bad-port":
            self.send_body(302, b"", {"Location": f"http://localhost:99999/?{query}"})
        elif route == "/slow":
            # Headers, then nothing: the source's deadline ends it.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(token.encode())
                self.wfile.flush()
                self.rfile.read(1)  # blocks until the client goes away
        else:
            self.send_body(404, f"no feed for token {token}".encode())


@pytest.fixture(scope="module")
def echo_base() -> Iterator[str]:
    with serve_handler(SecretEchoingHandler) as url:
        yield url


def catalog(base: str) -> str:
    """A sources file: one good feed without a secret, and one failing feed per mode, each with it."""
    port = urlsplit(base).port
    entries = {
        "good": f"{base}/good",
        "no-dns": f"http://unresolvable.invalid:{port}/feed?{QUERY}",
        "missing": f"{base}/missing?{QUERY}",
        "refused-hop": f"{base}/to-metadata?{QUERY}",
        "unresolvable-hop": f"{base}/to-nowhere?{QUERY}",
        "bad-port-hop": f"{base}/to-bad-port?{QUERY}",
        "slow": f"{base}/slow?{QUERY}",
        # The secret in the host name, which a buggy resolver quotes in its exception.
        "bug": f"http://feed-${{FEEDLAKE_VAR_TOKEN_HOST}}.test:{port}/feed",
    }
    lines = ["sources:"]
    for source_id, url in entries.items():
        lines += [f"  - id: {source_id}", f'    url: "{url}"', f"    name: {source_id}", "    publisher: p"]
        lines.append("    kind: news")
    return "\n".join(lines) + "\n"


HOST_SECRET = "h0st-s3cret"
ALL_VARIABLES = {**VARIABLES, "FEEDLAKE_VAR_TOKEN_HOST": HOST_SECRET}
SECRETS = (SECRET, HOST_SECRET, "s3cr3t-t0ken%2F%2Bvalue", "s3cr3t-t0ken/%2Bvalue")


@contextlib.contextmanager
def every_record(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Every record, DEBUG up, logged on these loggers or below them, formatted as a handler would.

    Prefect's logging setup may stop records from propagating to the root (and caplog's handler).
    """
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def formatted(records: list[logging.LogRecord]) -> str:
    """The records as a log file would show them, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} holds {secret!r}: {text[:500]}"


async def lookup(host: str, port: int) -> list[str]:
    """Loopback for the test server's names; a resolver failure, and a bug, for the others."""
    if host.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")
    if host.startswith("feed-"):
        raise ValueError(f"resolver crashed on {host}")
    return ["127.0.0.1"]


def test_fetch_errors_and_log_lines_show_only_the_placeholder(
    echo_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    checked = check_sources_text(catalog(echo_base), variables=ALL_VARIABLES)
    assert checked.problems == ()
    settings = FeedlakeSettings().model_copy(
        update={"total_timeout": 1.0, "fetch_attempts": 2, "backoff_seconds": 0.01}
    )

    async def run() -> list[FetchResult]:
        return await fetch_feeds(checked.sources, {}, settings, resolve=lookup)

    with caplog.at_level(logging.DEBUG):
        results = {r.source_id: r for r in asyncio.run(run())}
    assert results["good"].body == GOOD
    expected = {
        "no-dns": "could not resolve host",
        "missing": "server refused the request",
        "refused-hop": "cloud metadata address",
        "unresolvable-hop": "could not resolve host nowhere.invalid",
        "bad-port-hop": "port 99999 is out of range",
        "slow": "timed out",
        "bug": "ValueError: resolver crashed on feed-${FEEDLAKE_VAR_TOKEN_HOST}.test",
    }
    for source_id, reason in expected.items():
        error = results[source_id].error
        assert error is not None and reason in error.reason, (source_id, error)
        assert error.url is not None and "${FEEDLAKE_VAR_" in error.url, (source_id, error.url)
        for text in (error.reason, error.url, str(error), repr(error)):
            assert_no_secret(text, f"{source_id}'s error")
    assert results["bug"].error is not None and results["bug"].error.kind == "bug"
    # Every record, the debug tracebacks and httpx's own request lines included.
    assert any("HTTP Request" in r.getMessage() for r in caplog.records), "httpx logged its requests"
    assert any(r.levelno == logging.WARNING and "refused-hop" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert_no_secret(record.getMessage(), f"log record of {record.name}")
    assert_no_secret(caplog.text, "the captured log")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_poll_stores_no_secret_in_health_or_the_lake(
    echo_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedlake.flows.poll import poll_flow

    for name, value in ALL_VARIABLES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FEEDLAKE_TOTAL_TIMEOUT", "1")
    monkeypatch.setenv("FEEDLAKE_FETCH_ATTEMPTS", "1")
    sources = tmp_path / "s.yaml"
    sources.write_text("  - id: ".join(catalog_entries(echo_base)), encoding="utf-8")
    lake = tmp_path / "lake"
    with every_record("feedlake", "httpx", "httpcore", "prefect") as records:
        summary = poll_flow(sources=str(sources), lake=str(lake))
    reports = {r.source_id: r for r in summary.reports}
    assert reports["good"].status == "ok" and reports["good"].new > 0
    failed = [r for r in reports.values() if r.source_id != "good"]
    assert failed and all(r.status == "error" for r in failed), [(r.source_id, r.status) for r in failed]
    for report in reports.values():
        assert_no_secret(f"{report.error} {report.warnings}", f"report of {report.source_id}")
    health = (lake / "_state" / "health.json").read_text()
    assert "${FEEDLAKE_VAR_TOKEN}" in health
    files = [path for path in lake.rglob("*") if path.is_file()]
    assert any(path.suffix == ".parquet" for path in files)
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{path} holds {secret!r}"
    fetch_warnings = [
        r for r in records if r.name == "feedlake.tasks.fetch.client" and r.levelno == logging.WARNING
    ]
    assert len(fetch_warnings) == len(failed), [r.getMessage() for r in fetch_warnings]
    assert any(r.name == "httpx" for r in records), "httpx logged its requests"
    assert_no_secret(formatted(records), "the run's log")


def catalog_entries(base: str) -> list[str]:
    """The catalog without the ``bug`` source: a poll has no resolver hook to break (``.invalid``
    names fail in the system resolver as well)."""
    head, *entries = catalog(base).split("  - id: ")
    return [head, *(e for e in entries if not e.startswith("bug"))]
