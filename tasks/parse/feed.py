"""Parse stage: turn a fetched body into feed entries (RSS, Atom, RDF via feedparser; JSON Feed).

Input: a ``FetchResult`` with a body. Output: a ``ParsedFeed`` whose entries keep the feed's raw
values (HTML, date strings); normalizing them is the next stage's job. Unreadable bodies raise
``ParseError`` naming the source and the reason; readable-but-ill-formed ones yield entries and a
warning.

Relative references resolve against the document's base (``document_base``: xml:base in scope,
else the Content-Location, else the URL that answered). feedparser is run through
``read_with_feedparser``, its ``parse`` step for step with parser classes that keep what the feed
wrote where feedparser rewrites it (a guid resolved as a URL, a blank href read as the feed's own
address, a type the feed never gave): feedparser has no option for any of these.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from feedparser.api import PREFERRED_XML_PARSERS, LooseFeedParser, StrictFeedParser
from feedparser.encodings import convert_to_utf8
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import replace_doctype
from feedparser.urls import _urljoin as feedparser_urljoin
from feedparser.urls import make_safe_absolute_uri

from feedlake.tasks.errors import ParseError
from feedlake.tasks.parse.feedparser_rules import (
    URL_ATTRIBUTES,
    article_link,
    content_is_text,
    is_markup_type,
    resolve_markup_uris,
)
from feedlake.tasks.parse.jsonfeed import parse_json_feed
from feedlake.tasks.parse.xml_entry import entry_language, from_struct, guid_key, text_or_none
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
# Statuses whose Content-Location names the representation the body is (RFC 7231 3.1.4.2); None is a
# capture or a push, whose headers are the 200 response's.
_REPRESENTATION_STATUSES = (None, 200, 203)
# What the reading below adds to feedparser's entries (feedparser has no key of this prefix).
_PERMALINK = "feedlake_permalink"
_ENTRY_LANGUAGE = "feedlake_language"
_GUID_KEY = "feedlake_guid_key"


def parse_feed(fetched: FetchResult, fast_path: bool = True) -> ParsedFeed:
    """Parse one fetched body into entries, raising ParseError if it is not a readable feed.

    Well-formed RSS/Atom goes through the lxml fast path (``parse_xml``) unless ``fast_path`` is
    False; everything else, and anything the fast path declines, through feedparser.
    """
    if fetched.body is None:
        raise ParseError("nothing to parse (no body)", source_id=fetched.source_id, url=fetched.url)
    base_url = document_base(fetched)
    head = fetched.body[:64].lstrip()
    if head.startswith((b"{", b"[", b"\xef\xbb\xbf{")):
        return _parsed(fetched, parse_json_feed(fetched.body, fetched.source_id, base_url))
    return _parse_xml(fetched, base_url, fast_path)


def document_base(fetched: FetchResult) -> str:
    """The base URL of a fetched document: its Content-Location, made absolute, else the URL that answered.

    RFC 2616 14.14 made Content-Location the base of relative references and feedparser still uses
    it (RFC 7231 appendix B dropped that rule); xml:base inside the document overrides it in scope.
    """
    answered = fetched.final_url or fetched.url
    location = next((v for k, v in fetched.headers.items() if k.lower() == "content-location"), "")
    if not location.strip() or fetched.status not in _REPRESENTATION_STATUSES:
        return answered
    try:
        base = urljoin(answered, location.strip())
        scheme = urlsplit(base).scheme
    except ValueError:  # "http://[bad": the header is unusable, not the document
        return answered
    return base if scheme in ("http", "https") else answered


def guid_key_base(fetched: FetchResult) -> str:
    """The base earlier releases resolved guids against, and so made article ids from.

    Their parser resolved against the Content-Location header, set when absent to the URL that
    answered, and their fetch client always set it to that URL: so the URL that answered a live fetch,
    else the Content-Location a capture came with (a WARC record's, as written), else the URL.
    """
    if fetched.final_url:
        return fetched.final_url
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    return headers.get("content-location", fetched.url)


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
    headers["content-location"] = base_url  # both readers resolve against it
    body = replace_impossible_references(fetched.body or b"")
    # Article ids keep resolving guids from earlier releases' base (FeedEntry.guid_key).
    key_base = guid_key_base(fetched)
    guid_base = None if key_base == base_url else key_base
    fast, well_formed = read_feed_fast(body, headers, guid_base) if fast_path else (None, False)
    if fast is not None:
        links = _feed_links({"links": [{"rel": r, "href": h} for r, h in fast.links]}, base_url)
        language = fast.language or headers.get("content-language")
        return _parsed(fetched, replace(fast, language=language, links=links))
    # feedparser's own sanitizer is about two thirds of its parse time; we sanitize once, later,
    # with nh3. Its relative-URI resolver re-parses every HTML value in Python: we resolve with the
    # fast path's resolver instead, against the xml:base feedparser records with each value.
    # (fast_path=False keeps feedparser's own resolver: the reference the tests compare against.)
    own_resolver = fast_path and well_formed  # an ill-formed body gets feedparser's loose rules
    parsed = read_with_feedparser(body, headers, resolve_relative_uris=not own_resolver, guid_base=guid_base)
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


def read_with_feedparser(
    body: bytes, headers: Mapping[str, str], resolve_relative_uris: bool, guid_base: str | None = None
) -> Any:
    """``feedparser.parse`` of a body with its response headers, with the reading rules below.

    feedparser.parse, step for step (decode, strict parser, loose parser if that fails), but with
    parser classes that keep what the feed wrote: a guid as written, a link's href only when it has
    one, an enclosure's URL resolved, an entry's own xml:lang. No sanitizing (nh3 does it later).
    Each entry's guid as feedparser resolves it is kept apart for its article id, from ``guid_base``
    when given (else from the Content-Location header, as every other URL).
    """
    result = feedparser.FeedParserDict(bozo=False, entries=[], feed=feedparser.FeedParserDict(), headers={})
    result["headers"].update(headers)
    if not body:
        return result
    data = convert_to_utf8(result["headers"], body, result)
    result["version"], data, entities = replace_doctype(data)
    base = result["headers"].get("content-location", "")
    language = result["headers"].get("content-language")
    reader: Any = None
    if result["encoding"]:
        reader = _KEEPING_STRICT(base, language, "utf-8")
        reader.resolve_relative_uris, reader.sanitize_html = resolve_relative_uris, False
        _track_guid_bases(reader, guid_base)
        sax = xml.sax.make_parser(PREFERRED_XML_PARSERS)
        sax.setFeature(xml.sax.handler.feature_namespaces, 1)
        with contextlib.suppress(xml.sax.SAXNotSupportedException):
            sax.setFeature(xml.sax.handler.feature_external_ges, 0)  # never fetch a DTD
        sax.setContentHandler(reader)
        sax.setErrorHandler(reader)
        source = xml.sax.xmlreader.InputSource()
        source.setByteStream(io.BytesIO(data))
        try:
            sax.parse(source)
        except xml.sax.SAXException as exc:
            result["bozo"], result["bozo_exception"] = 1, reader.exc or exc
            reader = None
    if reader is None:
        reader = _KEEPING_LOOSE(base, language, "utf-8", entities)
        reader.resolve_relative_uris, reader.sanitize_html = resolve_relative_uris, False
        _track_guid_bases(reader, guid_base)
        reader.feed(data.decode("utf-8", "replace"))
    result["feed"], result["entries"] = reader.feeddata, reader.entries
    result["version"] = result["version"] or reader.version
    return result


def _without_blank_urls(attrs: dict[str, str]) -> dict[str, str]:
    # A blank href is no URL; feedparser would resolve it to the base (the feed document itself).
    return {k: v for k, v in attrs.items() if k not in URL_ATTRIBUTES or (v and v.strip())}


def _end_guid(self: Any) -> None:
    # feedparser resolves a permalink guid (and an atom:id) against the base; the guid stays as
    # written here ("id" is not in can_be_relative_uri below), and its resolved form is kept apart
    # for the entry's link.
    value = self.pop("id")
    self._save("guidislink", self.guidislink and "link" not in self._get_context())
    if self.guidislink:
        link = self.resolve_uri(value) if value else value
        self._save("link", link)
        if link:
            self._save(_PERMALINK, link)
    _keep_guid_key(self, value)


def _keep_guid_key(self: Any, value: str | None) -> None:
    # The article id's key (FeedEntry.guid_key): the guid as feedparser's own pop resolves it (a
    # permalink guid or atom:id, against earlier releases' base), kept where pop kept the guid:
    # in the entry, not its <source>, and only if no shallower guid came first (its depth rule).
    if value is None or not self.inentry or self.insource:
        return
    entry = self.entries[-1]
    if self.property_depth_map.get(entry, {}).get("id") != self.depth:
        return
    if self.guidislink and value:
        base = self.baseuri if self.feedlake_guid_bases is None else self.feedlake_guid_base
        value = feedparser_urljoin(base or "", value)
    entry[_GUID_KEY] = value


def _track_guid_bases(reader: Any, guid_base: str | None) -> None:
    # Only a guid base other than the document's needs a base chain of its own.
    if guid_base is not None:
        reader.feedlake_guid_base, reader.feedlake_guid_bases = guid_base, []


def _unknown_starttag(self: Any, tag: str, attrs: list[tuple[str, str]]) -> Any:
    bases = self.feedlake_guid_bases
    if bases is not None:
        # The guid base's xml:base chain beside feedparser's, by feedparser's own rule for it.
        given = dict(self._normalize_attributes(attr) for attr in attrs)
        inherited = self.feedlake_guid_base
        value = given.get("xml:base", given.get("base")) or inherited
        if isinstance(value, bytes):
            value = value.decode(self.encoding, "ignore")
        if inherited:
            self.feedlake_guid_base = make_safe_absolute_uri(inherited, value) or inherited
        else:
            self.feedlake_guid_base = feedparser_urljoin(inherited, value)
        bases.append(self.feedlake_guid_base)
    return _FeedParserMixin.unknown_starttag(self, tag, attrs)


def _unknown_endtag(self: Any, tag: str) -> None:
    depth = len(self.basestack)
    _FeedParserMixin.unknown_endtag(self, tag)
    bases = self.feedlake_guid_bases
    # feedparser leaves its base stack alone at some end tags (inline XHTML): so does this chain.
    if bases is not None and len(self.basestack) < depth:
        bases.pop()
        if bases and bases[-1]:
            self.feedlake_guid_base = bases[-1]


def _start_link(self: Any, attrs: dict[str, str]) -> None:
    attrs = _without_blank_urls(attrs)
    typed = "type" in attrs
    links = self._get_context().setdefault("links", [])
    known = len(links)
    _FeedParserMixin._start_link(self, attrs)
    if not typed and len(links) > known and links[-1].get("rel") == "enclosure":
        del links[-1]["type"]  # feedparser's default ("text/html") is not what the feed said


def _start_enclosure(self: Any, attrs: dict[str, str]) -> None:
    links = self._get_context().setdefault("links", [])
    known = len(links)
    _FeedParserMixin._start_enclosure(self, _without_blank_urls(attrs))
    if len(links) > known and links[-1].get("href"):
        links[-1]["href"] = self.resolve_uri(links[-1]["href"])  # feedparser leaves it relative


def _start_item(self: Any, attrs: dict[str, str]) -> None:
    _FeedParserMixin._start_item(self, attrs)
    # The xml:lang in force at the entry itself, for an entry with no text construct to carry it.
    self.entries[-1][_ENTRY_LANGUAGE] = self.lang.replace("_", "-") if self.lang else None
    if "id" in self.entries[-1]:
        self.entries[-1][_GUID_KEY] = self.entries[-1]["id"]  # an rdf:about, never resolved


_KEEPING_RULES = {
    "can_be_relative_uri": _FeedParserMixin.can_be_relative_uri - {"id"},
    "_end_guid": _end_guid,
    "_end_id": _end_guid,
    "_start_link": _start_link,
    "_start_enclosure": _start_enclosure,
    "_start_item": _start_item,
    "_start_entry": _start_item,
    "unknown_starttag": _unknown_starttag,
    "unknown_endtag": _unknown_endtag,
    "feedlake_guid_bases": None,
    "feedlake_guid_base": "",
}
_KEEPING_STRICT = type("KeepingStrictFeedParser", (StrictFeedParser,), _KEEPING_RULES)
_KEEPING_LOOSE = type("KeepingLooseFeedParser", (LooseFeedParser,), _KEEPING_RULES)


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
    # Content of a binary media type is base64 of a file, not text (RFC 4287 4.1.3.3).
    contents = [c for c in entry.get("content") or [] if content_is_text(c.get("type") or "text/html")]
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
    links = [
        ((link.get("rel") or "").strip(), link.get("type"), link.get("href"))
        for link in entry.get("links") or ()
    ]
    guid = text_or_none(entry.get("id"))
    return FeedEntry(
        guid=guid,
        guid_key=guid_key(guid, entry.get(_GUID_KEY)),
        link=article_link(links, entry.get(_PERMALINK)),
        title=title,
        title_is_html="html" in (title_detail.get("type") or ""),
        summary=summary,
        summary_is_html="plain" not in (summary_detail.get("type") or "text/html"),
        content=content.get("value") if content else None,
        content_is_html=is_markup_type((content or {}).get("type") or "text/html"),
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
        language=entry_language(
            entry.get("language"),
            (content or {}).get("language"),
            title_detail.get("language"),
            summary_detail.get("language"),
            entry.get(_ENTRY_LANGUAGE),
        ),
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
