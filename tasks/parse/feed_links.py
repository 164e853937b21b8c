"""Feed-level navigation links (RFC 5005 archives, paging, WebSub hubs) read from a document's header.

A scan of the raw bytes before the first entry, not a parse: backfills follow these links through
thousands of archive pages, and a WebSub subscriber needs only the hub and self links.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urljoin

ENTRY_START = re.compile(rb"<(?:item|entry)[\s>]", re.I)
_LINK_TAG = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?link\b[^>]*>", re.I)
_ATTRIBUTE = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def feed_links(body: bytes, base_url: str) -> dict[str, str]:
    """Feed-level navigation links (prev-archive, next, previous, ...) by relation, absolute."""
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            document = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        next_url = document.get("next_url") if isinstance(document, dict) else None
        return {"next": urljoin(base_url, next_url)} if isinstance(next_url, str) and next_url else {}
    # Only the document header (before the first entry) holds feed-level links.
    first_entry = ENTRY_START.search(body)
    header = body[: first_entry.start()] if first_entry else body
    found: dict[str, str] = {}
    for tag in _LINK_TAG.finditer(header):
        attributes = {
            m.group(1).lower(): (m.group(2) or m.group(3) or b"") for m in _ATTRIBUTE.finditer(tag.group())
        }
        rel, href = attributes.get(b"rel"), attributes.get(b"href")
        if rel and href:
            name = rel.decode("ascii", "replace").strip().lower()
            found.setdefault(name, urljoin(base_url, html.unescape(href.decode("utf-8", "replace")).strip()))
    return found
