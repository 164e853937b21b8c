"""Raw capture: every fetched feed document and page of a run as WARC records in the lake.

A run's capture is one gzipped WARC/1.1 file at ``_raw/<YYYY-MM-DD>/<run_id>.warc.gz``
(``layout.raw_capture_key``), passed to ``commit_run`` as one of its ``reports``: it becomes
visible with the run's table commit and is deleted with the run on rollback. ``feedlake
reextract`` reads it back with ``iter_raw_captures`` and extracts again without fetching.

The file holds a ``warcinfo`` record (the run and how many exchanges follow), then per exchange a
``request`` and a ``response`` record. Each names the other in ``WARC-Concurrent-To``; both carry
the final URL (``WARC-Target-URI``), the fetch time to the microsecond (``WARC-Date``, hence WARC
1.1) and feedlake's own ``WARC-Feedlake-Kind`` / ``-Source`` / ``-Article`` / ``-Run`` headers.
warcio writes and reads the records and their SHA-1 digests; only the pairing, the feedlake
headers and the gzip level (6, gzip's default, where warcio uses 9) are ours.

Bodies are stored as the caller got them, that is after the HTTP client undid any
Content-Encoding (httpx decodes gzip, deflate, br, zstd). The stored response headers match those
bytes: Content-Encoding and Transfer-Encoding are dropped, Content-Length is the stored body's
length, and the response record says what was undone in ``WARC-Feedlake-Decoded`` (e.g. ``gzip``).
So any WARC reader (warcio's ``content_stream``, pywb, the backfill's ``files`` strategy) gets the
stored body back as it is.

Secrets: request headers that carry credentials (Authorization, Proxy-Authorization, Cookie) are
never written; URLs are the caller's to redact. Header values are written on one line each (CR and
LF become spaces), and non-ASCII values are percent-encoded (RFC 8187) as warcio does.

Memory: ``warc_bytes`` builds the whole file in a BytesIO, because the capture is one object the
commit writes. A run of 1,000 real article pages of 100 KB (95 MiB of bodies) makes a 20 MiB
capture, held (on top of the pages themselves) until its commit; writing it takes about 2 s of one
core, in a thread beside the validate stage, and reading it back about 0.5 s, one record at a time.

Damage: reading checks every record's digests, the gzip checksums and the exchange count in the
``warcinfo`` record, so a truncated or altered file raises DamagedObjectError naming its key
rather than yielding a short body. Exchanges read before the damage may already have been yielded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser, StatusAndHeadersParserException
from warcio.warcwriter import WARCWriter

from feedlake.tasks.errors import DamagedObjectError, bug_reason
from feedlake.tasks.lake.commit import run_in_flight
from feedlake.tasks.lake.layout import RAW
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)

KINDS = ("page", "feed")
WARC_VERSION = "1.1"
# Request headers that carry the caller's credentials: never in the lake.
SECRET_REQUEST_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Response headers that describe the bytes on the wire, not the decoded bytes stored.
WIRE_RESPONSE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})

KIND_HEADER = "WARC-Feedlake-Kind"
SOURCE_HEADER = "WARC-Feedlake-Source"
ARTICLE_HEADER = "WARC-Feedlake-Article"
RUN_HEADER = "WARC-Feedlake-Run"
DECODED_HEADER = "WARC-Feedlake-Decoded"
_EXCHANGES_FIELD = "feedlake-exchanges"
_GZIP_LEVEL = 6

_CAPTURE_KEY = re.compile(rf"{RAW}/(?P<day>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})/(?P<run>[^/]+)\.warc\.gz")
# Whatever a reader of these bytes may raise on damage (warcio, zlib, header parsing, dates).
_READ_ERRORS = (
    ArchiveLoadFailed,
    StatusAndHeadersParserException,
    zlib.error,
    EOFError,
    ValueError,
    LookupError,
    OSError,
)


@dataclass(frozen=True)
class RawExchange:
    """One fetched document as captured: the final request's headers and the response as stored."""

    kind: str  # "page" | "feed"
    source_id: str
    article_id: str | None  # for pages
    url: str  # final URL after redirects
    fetched_at: datetime  # UTC
    request_headers: Mapping[str, str]
    status: int
    response_headers: Mapping[str, str]
    body: bytes


def warc_bytes(exchanges: Sequence[RawExchange], run_id: str) -> bytes:
    """One gzipped WARC file: a warcinfo record, then per exchange a request and a response record."""
    buffer = io.BytesIO()
    writer = WARCWriter(_GzipMembers(buffer), gzip=False, warc_version=WARC_VERSION)
    info = {
        "software": "feedlake",
        "format": f"WARC File Format {WARC_VERSION}",
        "run": run_id,
        # Text, not an int: warcio leaves out falsy fields, and "0" must stay for an empty run.
        _EXCHANGES_FIELD: str(len(exchanges)),
    }
    writer.write_record(writer.create_warcinfo_record(f"{run_id}.warc.gz", info))
    for exchange in exchanges:
        request, response = _records(writer, exchange, run_id)
        writer.write_record(request)
        writer.write_record(response)
    log.info("raw capture: run %s, %d exchanges, %d bytes", run_id, len(exchanges), buffer.tell())
    return buffer.getvalue()


class _GzipMembers:
    """A WARCWriter output that gzips each record as its own member, at gzip's default level.

    warcio's own gzip writes level 9: for 1,000 real pages (130 MB) that is 3.3 s of CPU against
    2.2 s at level 6, for a file 0.5 % larger. One member per record, as the WARC standard's
    annex D asks, so readers can seek to a record.
    """

    def __init__(self, out: io.BytesIO) -> None:
        self.out = out
        self.record = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.record.write(data)

    def flush(self) -> None:
        compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        self.out.write(compressor.compress(self.record.getvalue()) + compressor.flush())
        self.record = io.BytesIO()

    def tell(self) -> int:
        return self.out.tell()


def read_exchanges(data: bytes) -> Iterator[RawExchange]:
    """Every response record of a WARC written by warc_bytes, back as RawExchange (request headers
    from its concurrent request record); DamagedObjectError if the bytes are not such a file."""
    return _read_exchanges(data, "raw capture")


def iter_raw_captures(
    store: ObjectStore,
    since: date | None = None,
    source_id: str | None = None,
    kind: str | None = None,
) -> Iterator[tuple[str, RawExchange]]:
    """(run_id, exchange) for every exchange in the lake's committed raw captures, oldest run first,
    from date folders on or after ``since``, filtered by source and kind; a damaged file raises
    DamagedObjectError naming its key."""
    captures: list[tuple[date, str, str]] = []
    for key in store.list(f"{RAW}/"):
        found = _CAPTURE_KEY.fullmatch(key)
        if found is None:
            continue
        try:
            day = date.fromisoformat(found["day"])
        except ValueError:
            continue
        if since is None or day >= since:
            captures.append((day, found["run"], key))
    for _, run_id, key in sorted(captures):
        if run_in_flight(store, run_id):
            # The reader's contract: a run in flight, or one that crashed before recovery, has an
            # intent; recovery keeps its capture (committed) or deletes it (not).
            log.debug("raw capture %s belongs to a run in flight: skipped", key)
            continue
        data = store.get(key)
        if data is None:
            continue  # rolled back by a recovery since the listing
            continue
        for exchange in _read_exchanges(data, key):
            if source_id is not None and exchange.source_id != source_id:
                continue
            if kind is not None and exchange.kind != kind:
                continue
            yield run_id, exchange


def _records(writer: WARCWriter, exchange: RawExchange, run_id: str) -> tuple[Any, Any]:
    if exchange.kind not in KINDS:
        raise ValueError(f"raw exchange kind {exchange.kind!r} is not one of {KINDS}")
    if exchange.fetched_at.tzinfo is None:
        raise ValueError(f"raw exchange of {exchange.url}: fetched_at must be timezone-aware (UTC)")
    stamp = exchange.fetched_at.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    request_id, response_id = StatusAndHeadersParser.make_warc_id(), StatusAndHeadersParser.make_warc_id()
    common = {"WARC-Date": stamp, KIND_HEADER: exchange.kind, SOURCE_HEADER: exchange.source_id}
    if exchange.article_id is not None:
        common[ARTICLE_HEADER] = exchange.article_id
    common[RUN_HEADER] = run_id
    common = {name: _one_line(value) for name, value in common.items()}
    url = _one_line(exchange.url)

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # An HTTP request line is ASCII: an IRI's path goes in percent-encoded, escapes kept as they are.
    target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
    request_headers = [
        (_one_line(name), _one_line(value))
        for name, value in exchange.request_headers.items()
        if name.lower() not in SECRET_REQUEST_HEADERS
    ]
    request = writer.create_warc_record(
        url,
        "request",
        http_headers=StatusAndHeaders(f"GET {target} HTTP/1.1", request_headers, is_http_request=True),
        warc_headers_dict={"WARC-Record-ID": request_id, "WARC-Concurrent-To": response_id, **common},
    )

    response_headers, decoded = _stored_response_headers(exchange.response_headers, len(exchange.body))
    response_common = {**common, DECODED_HEADER: decoded} if decoded else common
    try:
        reason = HTTPStatus(exchange.status).phrase
    except ValueError:
        reason = ""
    response = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(exchange.body),
        length=len(exchange.body),
        http_headers=StatusAndHeaders(f"{exchange.status} {reason}".strip(), response_headers, "HTTP/1.1"),
        warc_headers_dict={
            "WARC-Record-ID": response_id,
            "WARC-Concurrent-To": request_id,
            **response_common,
        },
    )
    return request, response


def _stored_response_headers(headers: Mapping[str, str], length: int) -> tuple[list[tuple[str, str]], str]:
    """The response headers that describe the stored (decoded) body, and the encodings undone."""
    stored: list[tuple[str, str]] = []
    decoded = ""
    length_name = "Content-Length"
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "content-encoding":
            decoded = _one_line(value).strip()
        if lowered == "content-length":
            length_name = _one_line(name)
        if lowered not in WIRE_RESPONSE_HEADERS:
            stored.append((_one_line(name), _one_line(value)))
    # Kept under the caller's spelling of the name, so headers read back look like those given.
    stored.append((length_name, str(length)))
    if decoded.lower() == "identity":
        decoded = ""
    return stored, decoded


def _one_line(text: str) -> str:
    # A CR or LF in a header would end it early and let the rest pose as another header.
    return text.replace("\r", " ").replace("\n", " ")


def _read_exchanges(data: bytes, key: str) -> Iterator[RawExchange]:
    records = ArchiveIterator(io.BytesIO(data), check_digests="raise")
    requests: dict[str, dict[str, str]] = {}
    expected: int | None = None
    seen_info = False
    count = 0
    while True:
        try:
            record = next(records, None)
            if record is None:
                break
            if records.err_count:
                raise ArchiveLoadFailed("a record is longer or shorter than its Content-Length")
            rec_type = str(record.rec_type)
            if not seen_info:
                if rec_type != "warcinfo":
                    raise ArchiveLoadFailed(f"the first record is a {rec_type} record, not warcinfo")
                seen_info = True
                expected = _exchange_count(_payload(record))
                continue
            if rec_type == "request":
                record_id = str(record.rec_headers.get_header("WARC-Record-ID") or "")
                requests[record_id] = _headers(record.http_headers)
                _payload(record)
                continue
            if rec_type != "response":
                continue
            exchange = _exchange(record, requests)
        except _READ_ERRORS as exc:
            raise DamagedObjectError(key, f"not a readable raw capture ({_describe(exc)})") from None
        count += 1
        yield exchange
    if not seen_info:
        raise DamagedObjectError(key, "not a readable raw capture (no WARC records)")
    if expected is not None and count != expected:
        raise DamagedObjectError(
            key, f"not a whole raw capture ({count} of the {expected} exchanges it was written with)"
        )


def _describe(exc: Exception) -> str:
    # warcio quotes the line it could not read, which in a damaged gzip file is binary noise.
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in bug_reason(exc))


def _exchange(record: Any, requests: dict[str, dict[str, str]]) -> RawExchange:
    """A response record and its concurrent request record's headers as a RawExchange."""
    rec_headers = record.rec_headers
    http_headers = record.http_headers
    concurrent = str(rec_headers.get_header("WARC-Concurrent-To") or "")
    if concurrent not in requests:
        raise ArchiveLoadFailed("a response record without its concurrent request record")
    kind = str(rec_headers.get_header(KIND_HEADER) or "")
    source_id = rec_headers.get_header(SOURCE_HEADER)
    if kind not in KINDS or source_id is None or http_headers is None:
        raise ArchiveLoadFailed("a response record without feedlake's headers")
    article_id = rec_headers.get_header(ARTICLE_HEADER)
    stamp = str(rec_headers.get_header("WARC-Date") or "")
    body = _payload(record)
    return RawExchange(
        kind=kind,
        source_id=str(source_id),
        article_id=None if article_id is None else str(article_id),
        url=str(rec_headers.get_header("WARC-Target-URI") or ""),
        fetched_at=datetime.fromisoformat(stamp).astimezone(UTC),
        request_headers=requests.pop(concurrent),
        status=int(http_headers.get_statuscode()),
        response_headers=_headers(http_headers),
        body=body,
    )


def _payload(record: Any) -> bytes:
    """A record's payload exactly as stored, checked against its WARC-Payload-Digest."""
    body = bytes(record.raw_stream.read())
    # warcio checks digests only once a record is read to its declared length: a truncated file
    # ends a record early without a word, so the payload digest is checked here too.
    digest = record.rec_headers.get_header("WARC-Payload-Digest")
    if digest is not None and str(digest) != _sha1_digest(body):
        raise ArchiveLoadFailed(f"payload digest mismatch ({len(body)} bytes read)")
    return body


def _sha1_digest(body: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


def _headers(http_headers: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in http_headers.headers:
        # A name given twice (only in files not written here) reads back as one comma-joined value.
        name, value = str(name), str(value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _exchange_count(info: bytes) -> int | None:
    for line in info.decode("utf-8").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == _EXCHANGES_FIELD:
            return int(value.strip())
    return None
