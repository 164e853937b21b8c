"""JSON Feed 1.0 / 1.1 reader (feedparser 6 does not read JSON Feed).

A JSON document can hold any type anywhere, so every value is read through a typed accessor: a
field of the wrong type is dropped (``tags: 5``, ``title: 7``, ``content_html: []``), an item that
is not an object is skipped, and only the spec's own coercion is made (a numeric ``id`` becomes a
string, as JSON Feed 1.1 tells readers to do). One odd item never costs the feed its other items.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urljoin

from feedlake.tasks.errors import ParseError
from feedlake.tasks.values import Enclosure, FeedDocument, FeedEntry, storable_length

JSON_FEED_PREFIX = "https://jsonfeed.org/version/"
# Longer integer literals are read as floats: Python refuses to build ints of over 4,300 digits
# (a ValueError for the whole document), and no JSON Feed field needs more than an int64.
_MAX_INT_DIGITS = 100


def parse_json_feed(body: bytes, source_id: str, base_url: str) -> FeedDocument:
    """Read a JSON Feed document into feed entries; raise ParseError if it is not one."""
    try:
        document = json.loads(body.decode("utf-8-sig"), parse_int=_json_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"invalid JSON: {exc}", source_id=source_id, url=base_url) from exc
    except RecursionError as exc:
        raise ParseError("invalid JSON: nested too deeply", source_id=source_id, url=base_url) from exc
    if not isinstance(document, dict):
        raise ParseError("JSON document is not an object", source_id=source_id, url=base_url)
    version = json_string(document.get("version")) or ""
    if not version.startswith(JSON_FEED_PREFIX):
        if "rss" in document:
            reason = "RSS-in-JSON is not supported; point the source at the RSS or Atom URL"
        else:
            reason = "JSON document is not a JSON Feed (no jsonfeed.org version)"
        raise ParseError(reason, source_id=source_id, url=base_url)
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no 'items' list", source_id=source_id, url=base_url)
    home = json_string(document.get("home_page_url"))
    base = _joined(base_url, home) or _joined(base_url, json_string(document.get("feed_url"))) or base_url
    feed_authors = _authors(document)
    entries = tuple(_entry(item, base, feed_authors) for item in items if isinstance(item, dict))
    return FeedDocument(
        format="json" + version.removeprefix(JSON_FEED_PREFIX).replace(".", ""),
        title=json_string(document.get("title")),
        link=home,
        language=json_string(document.get("language")),
        entries=entries,
        links=_links(document, base_url),
    )


def _entry(item: dict[str, Any], base: str, feed_authors: tuple[str, ...]) -> FeedEntry:
    url = json_string(item.get("url")) or json_string(item.get("external_url"))
    html = json_string(item.get("content_html"))
    return FeedEntry(
        guid=json_id(item.get("id")),
        link=_joined(base, url),
        title=json_string(item.get("title")),
        title_is_html=False,
        summary=json_string(item.get("summary")),
        summary_is_html=False,
        content=html if html is not None else json_string(item.get("content_text")),
        content_is_html=html is not None,
        authors=_authors(item) or feed_authors,
        categories=tuple(dict.fromkeys(t for t in map(json_string, json_list(item.get("tags"))) if t)),
        enclosures=tuple(
            e for e in map(lambda a: _enclosure(a, base), json_list(item.get("attachments"))) if e
        ),
        published_raw=json_string(item.get("date_published")),
        updated_raw=json_string(item.get("date_modified")),
        language=json_string(item.get("language")),
    )


def _enclosure(attachment: object, base: str) -> Enclosure | None:
    if not isinstance(attachment, dict):
        return None
    url = _joined(base, json_string(attachment.get("url")))
    if url is None:
        return None
    return Enclosure(
        url=url,
        type=json_string(attachment.get("mime_type")),
        length=storable_length(attachment.get("size_in_bytes")),
    )


def _links(document: dict[str, Any], base_url: str) -> tuple[tuple[str, str], ...]:
    # JSON Feed pages older items with next_url (the paged-feed "next" of RFC 5005).
    next_url = _joined(base_url, json_string(document.get("next_url")))
    return (("next", next_url),) if next_url else ()


def _authors(holder: dict[str, Any]) -> tuple[str, ...]:
    raw = holder.get("authors")
    if not isinstance(raw, list):
        raw = [holder["author"]] if isinstance(holder.get("author"), dict) else []
    names = (json_string(a.get("name")) for a in raw if isinstance(a, dict))
    return tuple(dict.fromkeys(n for n in names if n))


def _joined(base: str, url: str | None) -> str | None:
    # urljoin raises ValueError on a malformed authority ("http://[::1"): such a URL is dropped.
    if url is None:
        return None
    try:
        return urljoin(base, url)
    except ValueError:
        return None


def _json_int(literal: str) -> int | float:
    return int(literal) if len(literal) <= _MAX_INT_DIGITS else float(literal)


def json_string(value: object) -> str | None:
    """A JSON string value, stripped; None for any other type or an empty string."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def json_id(value: object) -> str | None:
    """A JSON Feed id: a string, or a number coerced to one (JSON Feed 1.1 asks readers to)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(value) if math.isfinite(value) else None
    return json_string(value)


def json_list(value: object) -> list[object]:
    """A JSON array's members, or no members for any other type."""
    return value if isinstance(value, list) else []
