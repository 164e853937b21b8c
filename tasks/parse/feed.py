"""Parse stage: turn a fetched body into feed entries (RSS, Atom, RDF via feedparser; JSON Feed).

Input: a ``FetchResult`` with a body. Output: a ``ParsedFeed`` whose entries keep the feed's raw
values (HTML, date strings); normalizing them is the next stage's job. Unreadable bodies raise
``ParseError`` naming the source and the reason; readable-but-ill-formed ones yield entries and a
warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any
from urllib.parse import urljoin

import feedparser

from feedlake.tasks.errors import ParseError
from feedlake.tasks.parse.feedparser_rules import resolve_markup_uris
from feedlake.tasks.parse.jsonfeed import parse_json_feed
from feedlake.tasks.parse.xml_entry import from_struct, text_or_none
from feedlake.tasks.parse.xml_fast_path import read_feed_fast
from feedlake.tasks.values import Enclosure, FeedDocument, FeedEntry, FetchResult, ParsedFeed

log = logging.getLogger(__name__)

PROLOG_BYTES = 64 * 1024
# In UTF-8 or any ASCII-compatible encoding, and in UTF-16 (a NUL after each ASCII byte).
_ENTITY_DECLARATION = re.compile(
    rb"<!ENTITY|<\x00!\x00E\x00N\x00T\x00I\x00T\x00Y|\x00<\x00!\x00E\x00N\x00T\x00I\x00T\x00Y"
)

# A numeric character reference to a surrogate or past U+10FFFF: feedparser turns it into chr(n)
# and encodes it, and so fails the whole feed. Matched in UTF-8 or any ASCII-compatible encoding;
# only references long enough to be such a number match, so most (&#8217;) cost nothing.
_CHARACTER_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{4,})|([0-9]{5,}));")
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)

# feedparser flags these as bozo although the feed reads fine; they are not worth a warning.
_HARMLESS_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def parse_feed(fetched: FetchResult, fast_path: bool = True) -> ParsedFeed:
    """Parse one fetched body into entries, raising ParseError if it is not a readable feed.

    Well-formed RSS/Atom goes through the lxml fast path (``parse_xml``) unless ``fast_path`` is
    False; everything else, and anything the fast path declines, through feedparser.
    """
    if fetched.body is None:
        raise ParseError("nothing to parse (no body)", source_id=fetched.source_id, url=fetched.url)
    base_url = fetched.final_url or fetched.url
    head = fetched.body[:64].lstrip()
    if head.startswith((b"{", b"[", b"\xef\xbb\xbf{")):
        return _parsed(fetched, parse_json_feed(fetched.body, fetched.source_id, base_url))
    return _parse_xml(fetched, base_url, fast_path)


def _parse_xml(fetched: FetchResult, base_url: str, fast_path: bool) -> ParsedFeed:
    if _ENTITY_DECLARATION.search(fetched.body or b"", 0, PROLOG_BYTES):
        # Feeds never need their own entities; a declaration is how XML bombs (billion laughs) and
        # external entities (reading local files) start, so refuse before any parser sees it.
        raise ParseError(
            "refused: the document declares XML entities (possible XML bomb or external entity)",
            source_id=fetched.source_id,
            url=fetched.url,
        )
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    headers.setdefault("content-location", base_url)
    body = replace_impossible_references(fetched.body or b"")
    fast, well_formed = read_feed_fast(body, headers) if fast_path else (None, False)
    if fast is not None:
        links = _feed_links({"links": [{"rel": r, "href": h} for r, h in fast.links]}, base_url)
        language = fast.language or headers.get("content-language")
        return _parsed(fetched, replace(fast, language=language, links=links))
    # feedparser's own sanitizer is about two thirds of its parse time; we sanitize once, later,
    # with nh3. Its relative-URI resolver re-parses every HTML value in Python: we resolve with the
    # fast path's resolver instead, against the xml:base feedparser records with each value.
    # (fast_path=False keeps feedparser's own resolver: the reference the tests compare against.)
    own_resolver = fast_path and well_formed  # an ill-formed body gets feedparser's loose rules
    parsed = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=not own_resolver
    )
    warnings: list[str] = []
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    version = parsed.get("version") or ""
    if not parsed.entries:
        if problem is not None and not isinstance(problem, _HARMLESS_BOZO):
            if not version:
                raise ParseError(
                    _not_a_feed_reason(fetched.body or b"", problem),
                    source_id=fetched.source_id,
                    url=fetched.url,
                )
            raise ParseError(
                f"ill-formed {version} feed with no readable entries: {problem}",
                source_id=fetched.source_id,
                url=fetched.url,
            )
        if not version:
            raise ParseError(
                _not_a_feed_reason(fetched.body or b"", None),
                source_id=fetched.source_id,
                url=fetched.url,
            )
    if problem is not None and not isinstance(problem, _HARMLESS_BOZO):
        warnings.append(f"ill-formed XML, read {len(parsed.entries)} entries anyway: {problem}")
        log.warning("source %s: %s", fetched.source_id, warnings[-1])
    feed_meta = parsed.get("feed", {})
    feed_language = feed_meta.get("language") or headers.get("content-language")
    entries = tuple(_entry_from_feedparser(e, resolve=own_resolver) for e in parsed.entries)
    document = FeedDocument(
        format=version or "unknown",
        title=feed_meta.get("title"),
        link=feed_meta.get("link"),
        language=feed_language,
        entries=entries,
        links=_feed_links(feed_meta, base_url),
        warnings=tuple(warnings),
    )
    return _parsed(fetched, document)


def _parsed(fetched: FetchResult, document: FeedDocument) -> ParsedFeed:
    """The parse stage's output: what the reader found, and where the document came from."""
    found: dict[str, Any] = {name.name: getattr(document, name.name) for name in fields(FeedDocument)}
    found.update(capture_source=fetched.capture_source, captured_at=fetched.captured_at)
    return ParsedFeed(fetched.source_id, fetched.url, fetched.fetched_at, **found)


def replace_impossible_references(body: bytes) -> bytes:
    """Return the body with references to surrogates or past U+10FFFF made references to U+FFFD."""
    if _CHARACTER_REFERENCE.search(body) is None:
        return body

    def replace(match: re.Match[bytes]) -> bytes:
        digits, base = (match.group(1), 16) if match.group(1) else (match.group(2), 10)
        # Past 8 significant digits the value is out of range in either base; int() is not needed.
        significant = digits.lstrip(b"0")
        if len(significant) > 8:
            return b"&#xFFFD;"
        code_point = int(significant or b"0", base)
        if code_point > _MAX_CODE_POINT or code_point in _SURROGATES:
            return b"&#xFFFD;"
        return match.group(0)

    return _CHARACTER_REFERENCE.sub(replace, body)


def _feed_links(feed_meta: Mapping[str, Any], base_url: str) -> tuple[tuple[str, str], ...]:
    # atom:link elements (RFC 5005 prev-archive / next / previous, WebSub hub, self) at feed level.
    found = []
    for link in feed_meta.get("links") or ():
        rel, href = link.get("rel"), link.get("href")
        if isinstance(rel, str) and isinstance(href, str) and href.strip():
            try:
                found.append((rel.strip().lower(), urljoin(base_url, href.strip())))
            except ValueError:  # e.g. "http://[bad/": an unusable link is skipped, not the feed
                continue
    return tuple(found)


def _not_a_feed_reason(body: bytes, problem: object) -> str:
    head = body[:2048].lower()
    if b"<html" in head or b"<!doctype html" in head:
        return "got an HTML page, not a feed; point the source at the feed URL"
    if problem is not None:
        return f"not a readable feed: {problem}"
    return "not a feed: no RSS, Atom, RDF or JSON Feed root element"


def _resolved(value: str | None, detail: Mapping[str, Any], fallback_base: str) -> str | None:
    kind = detail.get("type") or "text/html"
    if value is None or "<" not in value or kind not in ("text/html", "application/xhtml+xml"):
        return value
    return resolve_markup_uris(value, detail.get("base") or fallback_base, kind)


def _entry_from_feedparser(entry: Mapping[str, Any], resolve: bool = False) -> FeedEntry:
    title_detail = entry.get("title_detail") or {}
    summary_detail = entry.get("summary_detail") or {}
    contents = entry.get("content") or []
    title, summary = entry.get("title"), entry.get("summary")
    if resolve:
        # feedparser was asked not to resolve: do it here, once per value, as its resolver would.
        base = next((c.get("base") for c in contents if c.get("base")), "") or title_detail.get("base", "")
        contents = [{**c, "value": _resolved(c.get("value"), c, base)} for c in contents]
        title = _resolved(title, title_detail, base) if title_detail else title
        summary = _resolved(summary, summary_detail or {"type": "text/html"}, base)
    # Prefer the richest HTML body when a feed offers several (text/plain and text/html, say).
    content = next(
        (c for c in contents if "html" in (c.get("type") or "")), contents[0] if contents else None
    )
    published_raw = entry.get("published")
    # feedparser maps a missing `updated` to `published` (with a DeprecationWarning); `in` does not.
    updated_raw = entry.get("updated") if "updated" in entry else None
    language = (
        (content or {}).get("language") or title_detail.get("language") or summary_detail.get("language")
    )
    return FeedEntry(
        guid=text_or_none(entry.get("id")),
        link=text_or_none(entry.get("link")),
        title=title,
        title_is_html="html" in (title_detail.get("type") or ""),
        summary=summary,
        summary_is_html="plain" not in (summary_detail.get("type") or "text/html"),
        content=content.get("value") if content else None,
        content_is_html="plain" not in ((content or {}).get("type") or "text/html"),
        authors=_authors(entry),
        categories=tuple(
            dict.fromkeys(
                t
                for t in (
                    (tag.get("term") or tag.get("label") or "").strip() for tag in entry.get("tags") or []
                )
                if t
            )
        ),
        enclosures=_enclosures(entry),
        published_raw=published_raw,
        updated_raw=updated_raw,
        published_parsed=from_struct(entry.get("published_parsed")),
        updated_parsed=from_struct(entry.get("updated_parsed") if "updated_parsed" in entry else None),
        language=language,
    )


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for author in entry.get("authors") or []:
        name = (author.get("name") or author.get("email") or "").strip()
        if name:
            names.append(name)
    if not names and entry.get("author"):
        names.append(str(entry["author"]).strip())
    return tuple(dict.fromkeys(n for n in names if n))


def _enclosures(entry: Mapping[str, Any]) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for enclosure in entry.get("enclosures") or []:
        url = (enclosure.get("href") or enclosure.get("url") or "").strip()
        if not url or url in found:
            continue
        length = str(enclosure.get("length") or "").strip()
        found[url] = Enclosure(
            url=url,
            type=enclosure.get("type") or None,
            length=int(length) if length.isdigit() and len(length) < 19 else None,
        )
    return tuple(found.values())
