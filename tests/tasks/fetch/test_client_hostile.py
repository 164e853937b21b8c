"""Fetch against a hostile server: each bad answer is that source's error, the good source beside it lands."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from feedlake.tasks.fetch.client import build_client, fetch_feeds, fetch_feeds_blocking
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FeedValidators, FetchResult
from tests.support.hostile_server import GOOD, HostileHandler, hostile_server, nested_gzip_bomb


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with hostile_server() as url:
        yield url


def settings(**overrides: object) -> FeedlakeSettings:
    values = {"backoff_seconds": 0.01, "fetch_attempts": 2, "total_timeout": 5.0, "read_timeout": 5.0}
    return FeedlakeSettings().model_copy(update={**values, **overrides})


def feed(name: str, url: str) -> Source:
    return Source(id=name, url=url, name=name, publisher="p", kind="news")


def fetch_beside_good(
    base: str, bad: Source, stored: dict[str, FeedValidators] | None = None, **overrides: object
) -> tuple[FetchResult, FetchResult]:
    """Fetch ``bad`` and a good source together; assert the good one landed."""
    bad_result, good = fetch_feeds_blocking(
        [bad, feed("good", f"{base}/good?{bad.id}")], stored or {}, settings(**overrides)
    )
    assert good.error is None and good.body == GOOD
    return bad_result, good


def test_non_ascii_etag_is_refused_logged_once_and_never_sent(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = feed("etag", f"{base}/non-ascii-etag?first")
    with caplog.at_level(logging.WARNING, logger="feedlake.tasks.fetch.client"):
        first, _ = fetch_beside_good(base, bad)
    assert first.error is None and first.body == GOOD
    assert first.validators == FeedValidators(None, "Sat, 16 Jan 2016 14:00:00 GMT")
    assert "etag" not in first.headers and first.headers["last-modified"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "source etag" in warnings[0] and "ETag" in warnings[0]

    # A bad value stored before this check existed is dropped too, not sent (httpx cannot encode it).
    stored = {"etag": FeedValidators('"café"', "Sat, 16 Jan 2016 14:00:00 GMT")}
    again, _ = fetch_beside_good(base, feed("etag", f"{base}/non-ascii-etag?second"), stored)
    assert again.error is None and again.body == GOOD
    sent = HostileHandler.seen["/non-ascii-etag?second"]
    assert "If-None-Match" not in sent and sent["If-Modified-Since"] == "Sat, 16 Jan 2016 14:00:00 GMT"


def test_retry_after_in_non_ascii_digits_is_ignored(base: str) -> None:
    bad, _ = fetch_beside_good(base, feed("sup", f"{base}/superscript-retry-after"))
    assert bad.error is not None and bad.error.transient and bad.status == 503
    assert getattr(bad.error, "retry_after", "missing") is None and bad.attempts == 2


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("to-bad-port", "port 99999 is out of range"),
        ("to-bad-idna", "redirect to an invalid URL"),
        ("to-bad-ipv6", "redirect to an invalid URL"),
        ("many-encodings", "Content-Encoding with 8 layers"),
    ],
)
def test_malformed_redirects_and_encodings_are_the_sources_error(base: str, route: str, reason: str) -> None:
    bad, _ = fetch_beside_good(base, feed(route, f"{base}/{route}"))
    assert bad.error is not None and not bad.error.transient and bad.attempts == 1
    assert reason in bad.error.reason and bad.body is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:99999/feed", "out of range"),
        ("http://exa mple.org/feed", "not a valid host name"),
        ("http://\N{SNOWMAN}.example/feed", "Invalid IDNA hostname"),
        ("gopher://example.org/", "absolute http(s) URL"),
    ],
)
def test_malformed_source_urls_are_the_sources_error(base: str, url: str, reason: str) -> None:
    bad, _ = fetch_beside_good(base, feed("malformed", url))
    assert bad.error is not None and reason in bad.error.reason and bad.attempts == 1


def test_nested_gzip_bomb_is_cut_off_at_the_cap_with_small_memory(base: str) -> None:
    nested_gzip_bomb()  # built before measuring: the server's copy is not the fetch's memory
    # The peak of Python allocations during this fetch alone (the process's peak RSS may have
    # been raised by an earlier test); zlib's output buffers are Python bytes, so they count.
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        bad, _ = fetch_beside_good(base, feed("bomb", f"{base}/nested-gzip-bomb"), max_body_bytes=1 << 20)
        peak_mib = tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()
    assert bad.error is not None and "byte cap" in bad.error.reason and not bad.error.transient
    assert peak_mib < 16, f"the fetch peaked at {peak_mib:.0f} MiB for a 1 MiB cap"
    assert HostileHandler.seen["/nested-gzip-bomb"]["Accept-Encoding"] == "gzip, deflate"


def slack(deadline: float) -> float:
    """A bound on a run's wall time that a loaded 2-core CI machine still meets."""
    return 2 * deadline + 3.0


def test_trickling_server_is_cut_off_by_one_deadline_across_attempts(base: str) -> None:
    started = time.monotonic()
    bad, _ = fetch_beside_good(
        base, feed("trickle", f"{base}/trickle"), total_timeout=1.0, fetch_attempts=3, read_timeout=5.0
    )
    elapsed = time.monotonic() - started
    assert bad.error is not None and bad.error.transient and "timed out" in bad.error.reason
    # One attempt: the deadline, not the read timeout or the attempt count, ended it.
    assert "deadline" in bad.error.reason and bad.attempts == 1
    assert elapsed < slack(1.0), f"the run took {elapsed:.1f}s for a 1s deadline"


def test_transient_failures_stop_at_the_deadline_not_the_attempt_count(base: str) -> None:
    started = time.monotonic()
    bad, _ = fetch_beside_good(
        base, feed("busy", f"{base}/server-error"), total_timeout=0.5, fetch_attempts=10, backoff_seconds=0.2
    )
    assert bad.error is not None and bad.error.transient and bad.status == 500
    assert bad.error.reason == "server answered with a retryable status"
    # Backoff doubles from 0.2 s: at most a few attempts fit in 0.5 s, never all ten.
    assert 1 <= bad.attempts < 10
    assert time.monotonic() - started < slack(0.5)


async def loopback(host: str, _port: int) -> list[str]:
    """A resolver for test host names: every one of them is the hostile server on loopback."""
    return ["127.0.0.1"]


def test_a_slow_host_cannot_stretch_the_run_past_twice_the_deadline(base: str) -> None:
    # Six trickling feeds on one host, one request at a time: without a run-wide bound they take
    # their deadlines in turn (6 x 1 s); the good feed on another host is not held up meanwhile.
    port = int(base.rsplit(":", 1)[1])
    slow = [feed(f"slow-{n}", f"http://slow.test:{port}/trickle?{n}") for n in range(6)]
    good = feed("good", f"http://good.test:{port}/good?beside-slow")
    arrived: list[str] = []

    async def run() -> list[FetchResult]:
        limits = settings(total_timeout=1.0, fetch_attempts=1, per_host_concurrency=1)
        return await fetch_feeds(
            [*slow, good], {}, limits, on_result=lambda r: arrived.append(r.source_id), resolve=loopback
        )

    started = time.monotonic()
    *late, landed = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert landed.error is None and landed.body == GOOD
    assert elapsed < slack(1.0), f"the run took {elapsed:.1f}s for a 1s deadline"
    assert all(r.error is not None and r.error.transient and r.body is None for r in late)
    waited = [r for r in late if r.error is not None and "waiting for the host" in r.error.reason]
    assert len(waited) >= 3, [r.error.reason for r in late if r.error is not None]
    assert all("2 x FEEDLAKE_TOTAL_TIMEOUT" in r.error.reason for r in waited if r.error is not None)
    assert sorted(arrived) == sorted(s.id for s in [*slow, good]), "every source's result reached on_result"


def test_connection_goes_to_the_vetted_address_not_a_new_lookup(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    answers: list[str] = []

    async def rebinding(host: str, _port: int) -> list[str]:
        # First answer passes the guard; any later lookup would point at another address.
        answers.append(host)
        return ["127.0.0.1"] if len(answers) == 1 else ["10.255.255.1"]

    async def run() -> list[FetchResult]:
        source = feed("rebind", f"http://rebind.test:{port}/good?rebind")
        return await fetch_feeds([source], {}, settings(fetch_attempts=1), resolve=rebinding)

    [result] = asyncio.run(run())
    assert result.error is None and result.body == GOOD
    assert answers == ["rebind.test"], "resolved once, by the guard"
    assert HostileHandler.seen["/good?rebind"]["Host"] == f"rebind.test:{port}"


def test_a_failed_lookup_is_an_error_naming_the_host(base: str) -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def run() -> list[FetchResult]:
        sources = [feed("nxdomain", "http://no-such-host.test/feed"), feed("good", f"{base}/good?nx")]
        # The good source is on an IP literal: it needs no lookup.
        return await fetch_feeds(sources, {}, settings(fetch_attempts=1), resolve=failing)

    bad, good = asyncio.run(run())
    assert bad.error is not None and bad.error.transient
    assert "could not resolve host no-such-host.test" in bad.error.reason
    assert good.body == GOOD


def test_the_client_never_connects_to_a_host_without_a_pin(base: str) -> None:
    async def run() -> None:
        async with build_client(settings()) as client:
            await client.get(f"{base}/good?unpinned")

    with pytest.raises(httpx.ConnectError, match="no vetted address"):
        asyncio.run(run())
    assert "/good?unpinned" not in HostileHandler.seen


def test_tls_keeps_the_host_name_while_connecting_to_the_pinned_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, cert_file, key_file = write_self_signed(tmp_path, "feed.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # httpx trusts only this certificate
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def only_loopback(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    async def run() -> list[FetchResult]:
        source = feed("tls", f"https://feed.example:{port}/good?tls")
        return await fetch_feeds([source], {}, settings(fetch_attempts=1), resolve=only_loopback)

    try:
        [result] = asyncio.run(run())
    finally:
        server.shutdown()
        server.server_close()
    assert result.error is None and result.body == GOOD  # the certificate matched feed.example
    assert server_names == ["feed.example"]
    assert HostileHandler.seen["/good?tls"]["Host"] == f"feed.example:{port}"


def write_self_signed(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """A self-signed certificate for ``host``; return (CA file, certificate file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, cert_file, key_file
