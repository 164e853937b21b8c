"""The fast path's reading of one entry: its elements in document order, with feedparser's rules."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedparser.datetimes import _parse_date as feedparser_date

from feedlake.tasks.parse.feedparser_rules import (
    HANDLERS,
    HTML_TYPES,
    INERT_HANDLERS,
    OPAQUE,
    PLAIN_OR_HTML,
    RDF,
    Unsupported,
    article_link,
    attribute,
    base_of,
    check_inert,
    element_text,
    feedparser_name,
    has_handler,
    href_of,
    is_markup_type,
    join_url,
    lang_of,
    link_text,
    looks_like_html,
    map_content_type,
    own_text,
    resolve_markup_uris,
    split_author,
)
from feedlake.tasks.values import Enclosure, FeedEntry


@dataclass
class TypedText:
    """A text construct's value with the type and language feedparser records as its detail."""

    value: str
    type: str
    language: str | None


class EntryReader:
    """One entry's elements, read in document order with feedparser's rules.

    feedparser reads nested elements as the entry's own (a media:title inside media:content sets the
    title), with depth rules: a deeper value never replaces a shallower one, a title locks out later
    ones at its depth or deeper, and a value's "detail" (type, language) is replaced regardless.
    """

    def __init__(
        self, item: Any, base: str, lang: str | None, atom: bool, rss1: bool, guid_base: str | None = None
    ) -> None:
        self.item, self.base, self.lang, self.atom, self.rss1 = item, base, lang, atom, rss1
        # The document base earlier releases resolved guids against, when it is not the root of
        # ``base`` (a Content-Location they did not read): guid keys then resolve from it.
        self.guid_base = guid_base
        self.values: dict[str, Any] = {}
        self.depths: dict[str, int | None] = {}
        self.title_lock: int | None = None
        self.title_detail: TypedText | None = None
        self.summary_present = False
        self.summary_detail: TypedText | None = None
        self.contents: list[TypedText] = []
        self.has_content = False
        self.authors: list[dict[str, str]] = []
        self.author_text: str | None = None
        self.tags: list[tuple[str | None, str | None, str | None]] = []
        self.enclosures: list[Enclosure] = []
        # Every link (rel, type, absolute href) in document order, and the first permalink guid.
        self.links: list[tuple[str, str | None, str]] = []
        self.permalink: str | None = None

    def read(self) -> FeedEntry:
        """Walk the entry and build its FeedEntry."""
        if self.rss1:
            about = self.item.get(f"{{{RDF}}}about")
            if about:
                self.values["id"] = self.values["guid_key"] = about  # never resolved, then as now
        self._walk(self.item, 1, self.lang, self.base)
        return self._entry()

    def _store(self, key: str, value: Any, depth: int | None) -> None:
        # feedparser's property depth map: a value set deeper never replaces a shallower one.
        old = self.depths.get(key)
        if key not in self.depths or old is None or (depth is not None and depth <= old):
            self.values[key] = value
            self.depths[key] = depth

    def _walk(self, element: Any, depth: int, lang: str | None, base: str) -> None:
        for child in element:
            if isinstance(child.tag, str):
                self._child(child, depth, lang_of(child, lang), base_of(child, base))

    def _child(self, child: Any, depth: int, lang: str | None, base: str) -> None:
        name = feedparser_name(child)
        handler = HANDLERS.get(name)
        if handler is None:
            if name in OPAQUE:
                check_inert(child, name)
                return
            if name not in INERT_HANDLERS and has_handler(name):
                raise Unsupported(f"element {name}")
            self._walk(child, depth + 1, lang, base)  # a container: feedparser reads its children
        elif handler in ("title", "media_title"):
            self._title(child, depth, lang, base, locks=handler == "title")
        elif handler == "link":
            self._link(child, base)
        elif handler == "guid":
            self._guid(child, depth, base)
        elif handler in ("description", "summary"):
            self._summary(child, depth, "text/html" if handler == "description" else "text/plain", lang, base)
        elif handler == "content":
            if attribute(child, "src"):
                raise Unsupported("out-of-line content")
            self._content(child, "text/plain", lang, base)
        elif handler == "content_html":
            self._content(child, "text/html", lang, base)
        elif handler in ("published", "updated", "created"):
            value = element_text(child)
            self._store(handler, value, depth)
            self.values[handler + "_parsed"] = feedparser_date(value)
        elif handler == "author":
            self._author(child)
        elif handler in ("category", "media_category", "itunes_category"):
            self._category(child, handler, depth, lang, base)
        elif handler in ("itunes_keywords", "media_keywords"):
            scheme = "http://www.itunes.com/" if handler == "itunes_keywords" else None
            for term in element_text(child).split(","):
                if term.strip():
                    self._add_tag(term.strip(), scheme, None)
        elif handler == "enclosure":
            href = href_of(child)
            self._enclosure(child, join_url(base, href) if href else None)
        elif handler == "language":
            self._store("language", element_text(child), depth)
        elif handler == "source":
            self.title_lock = None  # feedparser forgets the first title at a <source>
            check_inert(child, name, within_source=True)

    def _typed(self, child: Any, default: str, lang: str | None, base: str) -> TypedText:
        kind = map_content_type(attribute(child, "type") or default)
        if attribute(child, "mode") == "base64" or not (kind.startswith("text/") or kind.endswith("xml")):
            raise Unsupported("base64 or binary content")
        if kind.endswith("xml"):
            raise Unsupported("inline XHTML")
        value = element_text(child)
        if not self.atom and kind == "text/plain" and looks_like_html(value):
            kind = "text/html"
        if kind in HTML_TYPES and "<" in value:
            value = resolve_markup_uris(value, base, kind)
        return TypedText(value, kind, lang.replace("_", "-") if lang else None)

    def _title(self, child: Any, depth: int, lang: str | None, base: str, locks: bool) -> None:
        if self.title_lock is not None and self.title_lock <= depth:
            return  # a title was already read at this depth or above
        text = self._typed(child, "text/plain", lang, base)
        self._store("title", text.value, depth)
        self.title_detail = text
        if locks and text.value:  # media:title never locks (feedparser restores the lock after it)
            self.title_lock = depth

    def _link(self, child: Any, base: str) -> None:
        rel = attribute(child, "rel")
        rel = "alternate" if rel is None else rel.strip().lower()
        kind = attribute(child, "type")
        href = href_of(child)
        # A link written as text (RSS, or an Atom link with no href) is read as its href.
        href = link_text(child, base) if href is None else join_url(base, href)
        if rel == "enclosure":
            self._enclosure(child, href)
        self.links.append((rel, kind.lower() if kind else None, href))

    def _guid(self, child: Any, depth: int, base: str) -> None:
        # The guid as written; a permalink guid, resolved, is the link when the entry has none.
        value = element_text(child)
        self._store("id", value, depth)
        is_link = (attribute(child, "ispermalink") or "true") == "true"
        # The id's key, stored by the same depth rule as the guid: resolved as earlier releases did.
        self._store(
            "guid_key", join_url(self._guid_base(child, base), value) if is_link and value else value, depth
        )
        if value and self.permalink is None and is_link:
            self.permalink = join_url(base, value)

    def _guid_base(self, child: Any, base: str) -> str:
        if self.guid_base is None:
            return base
        # The xml:base chain from the root down to the guid, folded onto earlier releases' root.
        found = self.guid_base
        for element in (*reversed(tuple(child.iterancestors())), child):
            found = base_of(element, found)
        return found

    def _summary(self, child: Any, depth: int, default: str, lang: str | None, base: str) -> None:
        if self.summary_present and not self.has_content:
            self._content(child, "text/plain", lang, base)  # a second summary is read as content
            return
        text = self._typed(child, default, lang, base)
        self._store("summary", text.value, depth)
        self.summary_present = True
        self.summary_detail = text

    def _content(self, child: Any, default: str, lang: str | None, base: str) -> None:
        self.has_content = True
        text = self._typed(child, default, lang, base)
        self.contents.append(text)
        if not self.summary_present and text.type in PLAIN_OR_HTML:
            # feedparser copies the value (not its detail) with no depth: anything may replace it.
            self.summary_present = True
            self.values["summary"] = text.value
            self.depths["summary"] = None

    def _author(self, child: Any) -> None:
        detail: dict[str, str] = {}
        if len(child):
            for part in child:
                if not isinstance(part.tag, str):
                    continue
                name = feedparser_name(part)
                if name in ("name", "email"):
                    detail[name] = element_text(part)
                else:
                    check_inert(part, name)
        text = own_text(child)
        self.authors.append(detail)
        self.author_text = text
        if not detail and text:
            split_author(text, detail)

    def _category(self, child: Any, handler: str, depth: int, lang: str | None, base: str) -> None:
        if handler == "itunes_category":
            self._add_tag(attribute(child, "text"), "http://www.itunes.com/", None)
            self._walk(child, depth + 1, lang, base)  # nested itunes:category elements
        else:
            scheme = attribute(child, "scheme")
            scheme = attribute(child, "domain") if scheme is None else scheme
            if handler == "media_category" and scheme is None:
                scheme = "http://search.yahoo.com/mrss/category_schema"
            self._add_tag(attribute(child, "term"), scheme, attribute(child, "label"))
            if len(child):
                raise Unsupported("markup inside a category")
        value = own_text(child)
        if not value:
            return
        if self.tags and not self.tags[-1][0]:
            self.tags[-1] = (value, self.tags[-1][1], self.tags[-1][2])
        else:
            self._add_tag(value, None, None)

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        if not term and not scheme and not label:
            return
        if (term, scheme, label) not in self.tags:
            self.tags.append((term, scheme, label))

    def _enclosure(self, child: Any, href: str | None) -> None:
        url = (href or "").strip()
        if not url or any(e.url == url for e in self.enclosures):
            return
        length = str(attribute(child, "length") or "").strip()
        self.enclosures.append(
            Enclosure(
                url=url,
                type=attribute(child, "type") or None,
                length=int(length) if length.isdigit() and len(length) < 19 else None,
            )
        )

    def _entry(self) -> FeedEntry:
        values = self.values
        contents = self.contents
        content = next((c for c in contents if "html" in c.type), contents[0] if contents else None)
        title, summary = self.title_detail, self.summary_detail
        language = entry_language(
            values.get("language"),
            content.language if content else None,
            title.language if title else None,
            summary.language if summary else None,
            self.lang.replace("_", "-") if self.lang else None,
        )
        names = [n for n in ((a.get("name") or a.get("email") or "").strip() for a in self.authors) if n]
        if not names and self.author_text:
            names = [self.author_text.strip()]
        terms = ((tag[0] or tag[2] or "").strip() for tag in self.tags)
        guid = text_or_none(values.get("id"))
        return FeedEntry(
            guid=guid,
            guid_key=guid_key(guid, values.get("guid_key")),
            link=article_link(self.links, self.permalink),
            title=values.get("title"),
            title_is_html="html" in (title.type if title else ""),
            summary=values.get("summary"),
            summary_is_html="plain" not in ((summary.type if summary else "") or "text/html"),
            content=content.value if content else None,
            content_is_html=is_markup_type(content.type if content else "text/html"),
            authors=tuple(dict.fromkeys(names)),
            categories=tuple(dict.fromkeys(t for t in terms if t)),
            enclosures=tuple(self.enclosures),
            published_raw=values.get("published"),
            updated_raw=values.get("updated"),
            published_parsed=from_struct(values.get("published_parsed")),
            updated_parsed=from_struct(values.get("updated_parsed")),
            language=language,
        )


def entry_language(own: str | None, *in_force: str | None) -> str | None:
    """An entry's language: its own language element, else the first xml:lang in force given."""
    # An item's dc:language (or language) is said of the item; an xml:lang may be the feed's,
    # inherited, so the most specific scope given first (content, title, summary, the entry).
    return text_or_none(own) or next((lang for lang in in_force if lang), None)


def guid_key(guid: str | None, previous: str | None) -> str | None:
    """``FeedEntry.guid_key``: the guid as earlier releases read it, None when that is ``guid``."""
    if previous is None:
        return None  # no guid was read, or the reader did not record one: the guid itself
    read = text_or_none(previous)
    return None if read == guid else read or ""


def from_struct(value: time.struct_time | None) -> datetime | None:
    """A feedparser date tuple as an aware UTC datetime, or None."""
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def text_or_none(value: object) -> str | None:
    """A value as stripped text, None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
