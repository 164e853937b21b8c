"""Raw capture: a run's fetches as one WARC file, read back whole, found in a real local lake."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from warcio.archiveiterator import ArchiveIterator

from feedlake.tasks.backfill.captures import file_captures
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import commit_run, recover_lake
from feedlake.tasks.lake.layout import intent_key, new_run_id, raw_capture_key
from feedlake.tasks.lake.raw_capture import RawExchange, iter_raw_captures, read_exchanges, warc_bytes
from feedlake.tasks.lake.storage import ObjectStore, open_store
from tests.support.paths import CASES
from tests.support.threaded_http import QuietHandler, serve_handler

PAGE = (CASES / "pages" / "trafilatura" / "reuters.com.parasite.html").read_bytes()
FEED = (CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml").read_bytes()
RUN = "20260301T101500Z-0a1b2c3d"
AT = datetime(2026, 3, 1, 10, 15, 2, 123456, tzinfo=UTC)


def exchange(
    kind: str = "page", source_id: str = "src", article_id: str | None = "a1", **fields
) -> RawExchange:
    values = {
        "url": f"https://news.example/{kind}/{article_id or 'feed'}?x=1",
        "fetched_at": AT,
        "request_headers": {"user-agent": "feedlake/1", "accept": "*/*"},
        "status": 200,
        "response_headers": {"content-type": "text/html; charset=utf-8", "etag": '"v1"'},
        "body": PAGE,
    }
    values.update(fields)
    return RawExchange(kind=kind, source_id=source_id, article_id=article_id, **values)


def expected_headers(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The response headers as stored: the length is the stored body's."""
    return {**headers, "Content-Length": str(len(body))}


def test_page_and_feed_exchanges_round_trip() -> None:
    page = exchange(body=PAGE + b"\r\n\r\nWARC/1.1\r\n\xff\x00")  # bytes that look like a record boundary
    paris = timezone(timedelta(hours=1))
    feed = exchange("feed", "centcom", None, fetched_at=AT.astimezone(paris), status=304, body=b"")
    other = exchange(source_id="quelle-ü", article_id="artikel ß", url="https://ex.de/straße?q=ü", status=404)
    back = list(read_exchanges(warc_bytes([page, feed, other], RUN)))
    assert back == [
        RawExchange(**{**vars(e), "response_headers": expected_headers(dict(e.response_headers), e.body)})
        for e in (page, feed, other)
    ]
    assert [e.fetched_at.tzinfo for e in back] == [UTC, UTC, UTC]
    assert back[1].fetched_at == AT and back[1].article_id is None


def test_the_file_is_a_gzip_warc_of_linked_request_and_response_records() -> None:
    data = warc_bytes([exchange(), exchange("feed", article_id=None, body=FEED)], RUN)
    assert gzip.decompress(data).startswith(b"WARC/1.1\r\nWARC-Type: warcinfo\r\n")
    records = []
    for record in ArchiveIterator(io.BytesIO(data), check_digests="raise"):
        records.append((record.rec_type, dict(record.rec_headers.headers), record.content_stream().read()))
    assert [r[0] for r in records] == ["warcinfo", "request", "response", "request", "response"]
    for (_, request, _), (_, response, body), kind, expected in (
        (records[1], records[2], "page", PAGE),
        (records[3], records[4], "feed", FEED),
    ):
        assert request["WARC-Concurrent-To"] == response["WARC-Record-ID"]
        assert response["WARC-Concurrent-To"] == request["WARC-Record-ID"]
        assert request["WARC-Target-URI"] == response["WARC-Target-URI"]
        assert request["WARC-Date"] == response["WARC-Date"] == "2026-03-01T10:15:02.123456Z"
        assert response["WARC-Feedlake-Kind"] == kind and response["WARC-Feedlake-Run"] == RUN
        assert response["WARC-Feedlake-Source"] == "src"
        assert body == expected  # any WARC reader gets the stored body as it is
    assert records[2][1]["WARC-Feedlake-Article"] == "a1"
    assert "WARC-Feedlake-Article" not in records[4][1]


def test_the_backfill_files_strategy_reads_a_capture(tmp_path: Path) -> None:
    feeds = [
        exchange("feed", article_id=None, body=FEED),
        exchange("feed", article_id=None, status=304, body=b""),
    ]
    (tmp_path / "run.warc.gz").write_bytes(warc_bytes(feeds, RUN))
    count, captures = file_captures(tmp_path, "https://news.example/feed")
    found = list(captures)
    assert count == 1 and len(found) == 1  # the 304 has no document
    assert found[0].body == FEED and found[0].url == feeds[0].url and found[0].captured_at == AT


class GzipHandler(QuietHandler):
    def do_GET(self) -> None:
        self.send_body(
            200, gzip.compress(FEED), {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
        )


def test_a_real_gzip_response_is_stored_decoded_and_without_credentials() -> None:
    with serve_handler(GzipHandler) as base, httpx.Client() as client:
        secret = {"Authorization": "Bearer s3cr3t-token", "Cookie": "session=s3cr3t-cookie"}
        response = client.get(f"{base}/feed.xml", headers=secret)
    assert response.headers["content-encoding"] == "gzip"
    wire = exchange(
        "feed",
        article_id=None,
        url=str(response.url),
        request_headers=dict(response.request.headers),
        response_headers=dict(response.headers),
        body=response.content,
    )
    data = warc_bytes([wire], RUN)
    assert b"s3cr3t" not in gzip.decompress(data)
    (back,) = read_exchanges(data)
    assert back.body == FEED
    assert "content-encoding" not in back.response_headers
    assert back.response_headers["content-length"] == str(len(FEED))
    assert back.response_headers["content-type"] == "application/rss+xml"
    assert back.request_headers["host"] == base.removeprefix("http://")
    assert not {"authorization", "cookie"} & set(back.request_headers)
    response_record = list(ArchiveIterator(io.BytesIO(data)))[2]
    assert response_record.rec_headers.get_header("WARC-Feedlake-Decoded") == "gzip"


def test_credential_headers_are_dropped_in_any_spelling() -> None:
    headers = {
        "AUTHORIZATION": "Basic c2VjcmV0",
        "proxy-Authorization": "Basic c2VjcmV0",
        "cookie": "c2VjcmV0",
    }
    data = warc_bytes([exchange(request_headers={**headers, "Accept": "text/html"})], RUN)
    assert b"c2VjcmV0" not in gzip.decompress(data)
    assert next(read_exchanges(data)).request_headers == {"Accept": "text/html"}


def test_a_header_value_cannot_forge_another_header_or_record() -> None:
    forged = exchange(response_headers={"x-note": "a\r\nWARC-Type: revisit\r\n\r\nb"})
    (back,) = read_exchanges(warc_bytes([forged], RUN))
    assert back.response_headers["x-note"] == "a  WARC-Type: revisit    b"
    assert back.body == PAGE


def test_a_warc_of_zero_exchanges_is_valid() -> None:
    data = warc_bytes([], RUN)
    assert [r.rec_type for r in ArchiveIterator(io.BytesIO(data), check_digests="raise")] == ["warcinfo"]
    assert list(read_exchanges(data)) == []


def test_an_exchange_without_a_zone_or_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        warc_bytes([exchange(fetched_at=AT.replace(tzinfo=None))], RUN)
    with pytest.raises(ValueError, match="kind 'image'"):
        warc_bytes([exchange("image")], RUN)


def test_a_run_capture_is_filed_under_its_start_day() -> None:
    assert raw_capture_key(RUN) == f"_raw/2026-03-01/{RUN}.warc.gz"
    run = new_run_id()
    assert raw_capture_key(run).startswith(f"_raw/{datetime.now(UTC):%Y-%m-%d}/")
    for bad in ("run-1", "20261399T000000Z-x", "20260301T101500Z/x"):
        with pytest.raises(ValueError, match="UTC stamp"):
            raw_capture_key(bad)


def commit_capture(store: ObjectStore, run_id: str, exchanges: list[RawExchange]) -> str:
    key = raw_capture_key(run_id)
    commit_run(
        store, run_id, [], pa.table({}), {}, kind="poll", reports=[(key, warc_bytes(exchanges, run_id))]
    )
    return key


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[ObjectStore]:
    store = open_store(str(tmp_path / "lake"))
    commit_capture(store, "20260303T080000Z-cccc", [exchange(source_id="a", article_id="c1")])
    commit_capture(store, "20260301T230000Z-aaaa", [exchange("feed", "a", None), exchange(source_id="a")])
    commit_capture(store, "20260302T090000Z-bbb2", [exchange(source_id="b", article_id="b2")])
    commit_capture(store, "20260302T010000Z-bbb1", [exchange("feed", "b", None, body=FEED)])
    # A run that crashed before its commit point (not recovered yet): its intent and its capture.
    crashed = "20260304T000000Z-dddd"
    store.put(
        intent_key(crashed), json.dumps({"run_id": crashed, "objects": [raw_capture_key(crashed)]}).encode()
    )
    store.put(raw_capture_key(crashed), warc_bytes([exchange(source_id="a")], "x"))
    yield store


def found(store: ObjectStore, **filters) -> list[tuple[str, str, str, str | None]]:
    return [(run[9:11], e.kind, e.source_id, e.article_id) for run, e in iter_raw_captures(store, **filters)]


def test_committed_captures_are_read_oldest_run_first_and_filtered(lake: ObjectStore) -> None:
    assert found(lake) == [
        ("23", "feed", "a", None),
        ("23", "page", "a", "a1"),
        ("01", "feed", "b", None),
        ("09", "page", "b", "b2"),
        ("08", "page", "a", "c1"),
    ]
    assert found(lake, since=date(2026, 3, 2)) == found(lake)[2:]
    assert found(lake, since=date(2026, 3, 4)) == []
    assert found(lake, source_id="a", kind="page") == [("23", "page", "a", "a1"), ("08", "page", "a", "c1")]
    assert found(lake, kind="feed", since=date(2026, 3, 2)) == [("01", "feed", "b", None)]
    (_, feed), *_ = iter_raw_captures(lake, source_id="b", kind="feed")
    assert feed.body == FEED


def gzip_members(data: bytes) -> list[bytes]:
    members = []
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        inflater.decompress(data)
        members.append(data[: len(data) - len(inflater.unused_data)])
        data = inflater.unused_data
    return members


DAMAGES = {
    "not a warc": lambda data: b"\x89PNG\r\n\x1a\n not a capture",
    "cut in half": lambda data: data[: len(data) // 2],
    "last record lost": lambda data: b"".join(gzip_members(data)[:-1]),
    "request lost": lambda data: b"".join(gzip_members(data)[:-2] + gzip_members(data)[-1:]),
    "one byte flipped": lambda data: data[:900] + bytes([data[900] ^ 0x20]) + data[901:],
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_capture_raises_naming_its_key(lake: ObjectStore, damage: str) -> None:
    key = raw_capture_key("20260302T090000Z-bbb2")
    lake.put(key, DAMAGES[damage](lake.get(key) or b""))
    with pytest.raises(DamagedObjectError) as caught:
        found(lake)
    assert caught.value.key == key and key in str(caught.value)
    assert found(lake, since=date(2026, 3, 3)) == [("08", "page", "a", "c1")]


def test_a_run_that_crashed_before_its_commit_point_loses_its_capture_on_recovery(lake: ObjectStore) -> None:
    run_id = "20260305T000000Z-eeee"
    key = raw_capture_key(run_id)
    lake.put(intent_key(run_id), json.dumps({"run_id": run_id, "objects": [key]}).encode())
    lake.put(key, warc_bytes([exchange(source_id="e")], run_id))
    recover_lake(lake)
    assert lake.get(key) is None
    assert found(lake, source_id="e") == []
