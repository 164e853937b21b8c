"""Normalize stage: parsed entries to one Arrow RecordBatch in the article schema, column-wise.

Input: a ``ParsedFeed`` and its ``Source``. Output: a RecordBatch with ``ARTICLE_SCHEMA``. Text
fields are plain text (entities decoded, tags gone), HTML is sanitized, URLs are canonical, times
are UTC microseconds with ``date_source`` saying how the zone was known.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

import pyarrow as pa

from schemas.article import ARTICLE_SCHEMA
from tasks.dates import parse_feed_date
from tasks.entries import FeedEntry
from tasks.html_text import clean_text, html_to_text, sanitize_html
from tasks.parse import ParsedFeed
from tasks.sources import Source
from tasks.urls import canonical_url

log = logging.getLogger(__name__)

_SEPARATOR = "\x1f"


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


def normalize_feed(parsed: ParsedFeed, source: Source, run_id: str) -> pa.RecordBatch:
    """Build the article RecordBatch for one parsed feed."""
    columns: dict[str, list[object]] = {name: [] for name in ARTICLE_SCHEMA.names}
    feed_language = _language(parsed.language) or _language(source.language)
    base = parsed.feed_url
    for entry in parsed.entries:
        _append_entry(columns, entry, parsed, source, run_id, base, feed_language)
    arrays = [pa.array(columns[f.name], type=f.type) for f in ARTICLE_SCHEMA]
    batch = pa.RecordBatch.from_arrays(arrays, schema=ARTICLE_SCHEMA)
    log.info(
        "normalize: source %s, %d entries -> %d rows",
        source.id,
        len(parsed.entries),
        batch.num_rows,
    )
    return batch


def _append_entry(
    columns: dict[str, list[object]],
    entry: FeedEntry,
    parsed: ParsedFeed,
    source: Source,
    run_id: str,
    base: str,
    feed_language: str | None,
) -> None:
    url = canonical_url(entry.link, base)
    guid = clean_text(entry.guid) if entry.guid else None
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
    columns["article_id"].append(
        make_article_id(
            source.id,
            guid,
            url,
            _SEPARATOR.join((title or "", published_raw or "", content_text or "")),
        )
    )
    columns["source_id"].append(source.id)
    columns["feed_url"].append(parsed.feed_url)
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
