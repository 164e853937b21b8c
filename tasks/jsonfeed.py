"""JSON Feed 1.0 / 1.1 reader (feedparser 6 does not read JSON Feed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from tasks.entries import Enclosure, FeedEntry
from tasks.errors import ParseError

JSON_FEED_PREFIX = "https://jsonfeed.org/version/"


@dataclass(frozen=True)
class JsonFeed:
    """The parts of a JSON Feed document the parse stage needs."""

    format: str
    title: str | None
    link: str | None
    language: str | None
    entries: tuple[FeedEntry, ...]
    links: tuple[tuple[str, str], ...] = ()


def parse_json_feed(body: bytes, source_id: str, base_url: str) -> JsonFeed:
    """Read a JSON Feed document into feed entries; raise ParseError if it is not one."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"invalid JSON: {exc}", source_id=source_id, url=base_url) from exc
    if not isinstance(document, dict):
        raise ParseError("JSON document is not an object", source_id=source_id, url=base_url)
    version = str(document.get("version") or "")
    if not version.startswith(JSON_FEED_PREFIX):
        if "rss" in document:
            reason = "RSS-in-JSON is not supported; point the source at the RSS or Atom URL"
        else:
            reason = "JSON document is not a JSON Feed (no jsonfeed.org version)"
        raise ParseError(reason, source_id=source_id, url=base_url)
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no 'items' list", source_id=source_id, url=base_url)
    home = _string(document.get("home_page_url"))
    base = home or _string(document.get("feed_url")) or base_url
    feed_language = _string(document.get("language"))
    entries: list[FeedEntry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        url = _string(item.get("url")) or _string(item.get("external_url"))
        html = _string(item.get("content_html"))
        entries.append(
            FeedEntry(
                guid=_string(item.get("id")),
                link=urljoin(base, url) if url else None,
                title=_string(item.get("title")),
                title_is_html=False,
                summary=_string(item.get("summary")),
                summary_is_html=False,
                content=html if html is not None else _string(item.get("content_text")),
                content_is_html=html is not None,
                authors=_authors(item) or _authors(document),
                categories=tuple(dict.fromkeys(t for t in (_string(t) for t in item.get("tags") or []) if t)),
                enclosures=tuple(
                    Enclosure(
                        url=urljoin(base, str(a["url"])),
                        type=_string(a.get("mime_type")),
                        length=a["size_in_bytes"] if isinstance(a.get("size_in_bytes"), int) else None,
                    )
                    for a in item.get("attachments") or []
                    if isinstance(a, dict) and a.get("url")
                ),
                published_raw=_string(item.get("date_published")),
                updated_raw=_string(item.get("date_modified")),
                language=_string(item.get("language")),
            )
        )
    return JsonFeed(
        format="json" + version.removeprefix(JSON_FEED_PREFIX).replace(".", ""),
        title=_string(document.get("title")),
        link=home,
        language=feed_language,
        entries=tuple(entries),
        links=_links(document, base_url),
    )


def _links(document: dict[str, Any], base_url: str) -> tuple[tuple[str, str], ...]:
    # JSON Feed pages older items with next_url (the paged-feed "next" of RFC 5005).
    next_url = _string(document.get("next_url"))
    return (("next", urljoin(base_url, next_url)),) if next_url else ()


def _authors(holder: dict[str, Any]) -> tuple[str, ...]:
    raw = holder.get("authors")
    if not isinstance(raw, list):
        raw = [holder["author"]] if isinstance(holder.get("author"), dict) else []
    names = (_string(a.get("name")) for a in raw if isinstance(a, dict))
    return tuple(dict.fromkeys(n for n in names if n))


def _string(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None
