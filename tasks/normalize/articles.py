"""Normalize stage: parsed entries to one Arrow RecordBatch in the article schema, column-wise.

Input: a ``ParsedFeed`` and its ``Source``. Output: a RecordBatch with ``ARTICLE_SCHEMA``. Text
fields are plain text (entities decoded, tags gone), HTML is sanitized, URLs are canonical, times
are UTC microseconds with ``date_source`` saying how the zone was known.

One item never fails its feed: an entry that raises while normalized, or whose values Arrow will
not take (a lone surrogate, an out-of-range number), is left out of the rows and returned as a
quarantine row (``held``, stage ``normalize``) with the reason in ``failed_expectations``. Such a row
keeps what can be kept as raw text (guid, link, title, clipped, made valid UTF-8); its article id is
made from those, like any other, so a later poll finds it in the seen index and does not hold it
again. The happy path pays nothing for this: no per-row check, only a retry per row once a batch
has failed to build.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from feedlake.schemas.article import ARTICLE_SCHEMA, QUARANTINE_FIELDS, quarantine_schema
from feedlake.tasks.errors import ParseError, bug_reason
from feedlake.tasks.normalize.canonical_urls import canonical_url
from feedlake.tasks.normalize.dates import parse_feed_date
from feedlake.tasks.normalize.html_text import clean_text, html_to_text, sanitize_html
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FeedEntry, ParsedFeed

log = logging.getLogger(__name__)

_SEPARATOR = "\x1f"
HELD_SCHEMA = quarantine_schema(ARTICLE_SCHEMA)
NORMALIZE_STAGE = "normalize"
# Raw text kept of an item that could not be normalized: enough to find it in the feed.
_RAW_CHARS = 2000


@dataclass(frozen=True)
class NormalizedFeed:
    """A feed's article rows, and the items that could not be normalized as quarantine rows."""

    rows: pa.RecordBatch
    held: pa.RecordBatch | None = None


def make_article_id(source_id: str, guid: str | None, url: str | None, fallback: str) -> str:
    """Stable id from the source id plus the guid, else the canonical URL, else the content."""
    if guid:
        key = "guid:" + guid
    elif url:
        key = "url:" + url
    else:
        key = "content:" + fallback
    return _digest(source_id, key)


def make_content_hash(*parts: str | None) -> str:
    """Hash of the fields whose change means the article was edited."""
    return _digest(*(p or "" for p in parts))


def _document_article_id(
    columns: dict[str, list[object]],
    source_id: str,
    guid: str | None,
    url: str | None,
    title: str | None,
    content_hash: str,
    fallback: str,
) -> str:
    """``make_article_id``, told apart from earlier entries of the document that share its link only.

    One guid is one article: the same guid with other content is an edit, kept as a version (same id,
    another content hash). Without a guid the link is the id, but a document may list different
    articles under one link (a section page, a feed's home page): the first entry with the link keeps
    the link's id (so ids of existing lakes stay), and a later one whose title differs from the
    first's (its text, when untitled) gets the link plus that title (or text) as its id: stable
    across polls of one document, and an edit of its body stays a version of it.
    """
    article_id = make_article_id(source_id, guid, url, fallback)
    if guid or not url:
        return article_id
    # A linear scan, and only for guid-less entries: feeds list tens of items, rarely thousands.
    try:
        first = columns["article_id"].index(article_id)
    except ValueError:
        return article_id
    first_title = columns["title"][first]
    if title:
        return article_id if title == first_title else _digest(source_id, "url:" + url, "title:" + title)
    if first_title is None and content_hash == columns["content_hash"][first]:
        return article_id  # an identical repeat: the dedup stage counts it once
    return _digest(source_id, "url:" + url, "text:" + content_hash)


def normalize_feed(parsed: ParsedFeed, source: Source, run_id: str) -> pa.RecordBatch:
    """Build the article RecordBatch for one parsed feed; ParseError if any item cannot be."""
    feed = normalize_entries(parsed, source, run_id)
    if feed.held is not None:
        reasons = feed.held.column("failed_expectations")[0].as_py()
        raise ParseError(f"an item could not be normalized: {reasons[0]}", source_id=source.id)
    return feed.rows


def normalize_entries(parsed: ParsedFeed, source: Source, run_id: str) -> NormalizedFeed:
    """Build the article RecordBatch for one parsed feed, holding back each item that cannot be."""
    columns: dict[str, list[object]] = {name: [] for name in ARTICLE_SCHEMA.names}
    feed_language = _language(parsed.language) or _language(source.language)
    base = parsed.feed_url
    # Stored for readers: a placeholder's value (a token) never reaches the lake. Once per feed.
    feed_url = source.redact(parsed.feed_url)
    failed: list[tuple[FeedEntry, BaseException]] = []
    built: list[FeedEntry] = []
    for entry in parsed.entries:
        try:
            _append_entry(columns, entry, parsed, source, run_id, base, feed_url, feed_language)
        except Exception as exc:  # noqa: BLE001 - one item's surprise must not fail its feed
            # Columns are appended in turn: cut back whatever this entry had added.
            for values in columns.values():
                del values[len(built) :]
            failed.append((entry, exc))
        else:
            built.append(entry)
    try:
        batch = _batch(columns, ARTICLE_SCHEMA)
    except Exception:  # noqa: BLE001 - find the rows Arrow refuses, one at a time (rare)
        keep = []
        for position, entry in enumerate(built):
            try:
                _batch(
                    {name: values[position : position + 1] for name, values in columns.items()},
                    ARTICLE_SCHEMA,
                )
            except Exception as exc:  # noqa: BLE001
                failed.append((entry, exc))
            else:
                keep.append(position)
        batch = _batch({name: [values[p] for p in keep] for name, values in columns.items()}, ARTICLE_SCHEMA)
    held = _held_rows(failed, parsed, source, run_id) if failed else None
    log.info(
        "normalize: source %s, %d entries -> %d rows, %d held",
        source.id,
        len(parsed.entries),
        batch.num_rows,
        len(failed),
    )
    return NormalizedFeed(batch, held)


def _batch(columns: dict[str, list[object]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _held_rows(
    failed: Sequence[tuple[FeedEntry, BaseException]], parsed: ParsedFeed, source: Source, run_id: str
) -> pa.RecordBatch:
    """Quarantine rows for items that could not be normalized: raw text where it can be kept."""
    captured_at = parsed.captured_at or parsed.fetched_at
    columns: dict[str, list[object]] = {name: [] for name in HELD_SCHEMA.names}
    for entry, exc in failed:
        guid, link, title = (_raw(entry.guid), _raw(entry.link), _raw(entry.title))
        fallback = _SEPARATOR.join((title or "", _raw(entry.published_raw) or "", _raw(entry.summary) or ""))
        row: dict[str, object] = {
            "article_id": make_article_id(source.id, guid, link, fallback),
            "source_id": source.id,
            "feed_url": source.redact(_raw(parsed.feed_url) or ""),
            "guid": guid,
            "url": link,
            "title": title,
            "authors": [],
            "categories": [],
            "enclosures": [],
            "published_raw": _raw(entry.published_raw),
            "date_source": "missing",
            "fetched_at": parsed.fetched_at,
            "content_hash": make_content_hash(title, link, fallback),
            "run_id": run_id,
            "capture_source": parsed.capture_source,
            "captured_at": captured_at,
            "content_source": "feed",
            "published_date": captured_at.date(),
            QUARANTINE_FIELDS[0].name: [f"{NORMALIZE_STAGE}: {bug_reason(exc)}"],
            QUARANTINE_FIELDS[1].name: NORMALIZE_STAGE,
        }
        for name, values in columns.items():
            values.append(row.get(name))
    return _batch(columns, HELD_SCHEMA)


def _raw(value: object) -> str | None:
    """Any value as clipped, valid UTF-8 text (lone surrogates and the like replaced)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text[:_RAW_CHARS].encode("utf-8", "replace").decode("utf-8")


def _append_entry(
    columns: dict[str, list[object]],
    entry: FeedEntry,
    parsed: ParsedFeed,
    source: Source,
    run_id: str,
    base: str,
    feed_url: str,
    feed_language: str | None,
) -> None:
    url = canonical_url(entry.link, base)
    # The guid as the feed gave it, only trimmed: not resolved, not case-folded, inner spaces kept.
    guid = entry.guid.strip() or None if entry.guid else None
    title = _text(entry.title, entry.title_is_html)
    summary_text = _text(entry.summary, entry.summary_is_html)
    body = entry.content if entry.content is not None else entry.summary
    body_is_html = entry.content_is_html if entry.content is not None else entry.summary_is_html
    content_text = _text(body, body_is_html)
    content_html = sanitize_html(body) if body and body_is_html else None
    published_raw = entry.published_raw or entry.updated_raw
    published = parse_feed_date(
        published_raw, entry.published_parsed if entry.published_raw else entry.updated_parsed
    )
    updated = parse_feed_date(entry.updated_raw, entry.updated_parsed)
    published_at = published.value
    fetched_at = parsed.fetched_at
    # The id keeps the guid's cleaned form (as ids were always made), whatever the guid column holds.
    columns["article_id"].append(
        _document_article_id(
            columns,
            source.id,
            clean_text(entry.guid_for_id) if entry.guid_for_id else None,
            url,
            title,
            make_content_hash(title, url, summary_text, content_text),
            _SEPARATOR.join((title or "", published_raw or "", content_text or "")),
        )
    )
    columns["source_id"].append(source.id)
    columns["feed_url"].append(feed_url)
    columns["guid"].append(guid)
    columns["url"].append(url)
    columns["title"].append(title)
    columns["summary_text"].append(summary_text)
    columns["content_text"].append(content_text)
    columns["content_html"].append(content_html)
    columns["authors"].append([clean_text(a) for a in entry.authors if clean_text(a)])
    columns["categories"].append([clean_text(c) for c in entry.categories if clean_text(c)])
    columns["enclosures"].append(_enclosures(entry, base))
    columns["language"].append(_language(entry.language) or feed_language)
    columns["published_at"].append(published_at)
    columns["updated_at"].append(updated.value)
    columns["published_raw"].append(published_raw)
    columns["date_source"].append(published.source)
    columns["fetched_at"].append(fetched_at)
    columns["content_hash"].append(make_content_hash(title, url, summary_text, content_text))
    columns["run_id"].append(run_id)
    captured_at = parsed.captured_at or fetched_at
    columns["capture_source"].append(parsed.capture_source)
    columns["captured_at"].append(captured_at)
    # The feed's text until the full-text stage (tasks/full_text/stage.py) finds the page's.
    columns["content_source"].append("feed")
    for name in ("page_url", "page_status", "page_fetched_at"):
        columns[name].append(None)
    # An undated article existed when its document was captured: that date beats today's.
    columns["published_date"].append(_partition_date(published_at, captured_at))


def _text(value: str | None, is_html: bool) -> str | None:
    if value is None:
        return None
    text = html_to_text(value) if is_html else clean_text(value)
    return text or None


def _enclosures(entry: FeedEntry, base: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for enclosure in entry.enclosures:
        url = canonical_url(enclosure.url, base)
        if url:
            found.append({"url": url, "type": enclosure.type, "length": enclosure.length})
    return found


def _language(value: str | None) -> str | None:
    if not value:
        return None
    code = value.strip().replace("_", "-").lower()
    return code or None


def _partition_date(published_at: datetime | None, fetched_at: datetime) -> object:
    return (published_at or fetched_at).date()


def _digest(*parts: str) -> str:
    return hashlib.blake2b(
        _SEPARATOR.join(parts).encode("utf-8", "surrogatepass"), digest_size=16
    ).hexdigest()
