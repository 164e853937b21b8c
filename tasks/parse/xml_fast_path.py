"""Fast path of the parse stage: well-formed RSS 2.0, RSS 1.0 and Atom 1.0 read with lxml.

feedparser reads any feed, however broken, but its pure-Python SAX handlers cost about a
millisecond per entry. Most feeds are well-formed and use a small set of elements; this module
reads those with libxml2 (about 20x faster) and gives the same ``FeedEntry`` values feedparser's
path gives, rule for rule (first title wins, a description after a summary is content, guid as
link, the mojibake and cp1252 repairs, base URIs, authors as "name (email)").

Anything outside that set (not well-formed, an element this module does not model, inline XHTML,
xml:base, a charset header that disagrees with the document, ...) makes ``read_well_formed_feed``
return None and the caller uses feedparser. ``tests/tasks/parse/test_xml_fast_path.py`` holds both paths to
the same rows over every feed of the bundled real-world corpus.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

from lxml import etree

from feedlake.tasks.parse.feedparser_rules import (
    ATOM,
    HTML_TYPES,
    RDF,
    RSS090,
    RSS1,
    Unsupported,
    attribute,
    base_of,
    element_text,
    feedparser_name,
    href_of,
    join_url,
    lang_of,
    link_text,
    map_content_type,
)
from feedlake.tasks.parse.xml_entry import EntryReader
from feedlake.tasks.values import FeedDocument

_RSS_VERSIONS = {"2.0": "rss20", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, huge_tree=False
)


def read_well_formed_feed(body: bytes, headers: Mapping[str, str]) -> FeedDocument | None:
    """Read a well-formed RSS 2.0/1.0 or Atom 1.0 body, or None when feedparser must read it."""
    return read_feed_fast(body, headers)[0]


def read_feed_fast(
    body: bytes, headers: Mapping[str, str], guid_base: str | None = None
) -> tuple[FeedDocument | None, bool]:
    """The fast path's reading (or None), and whether the body is well-formed XML at all.

    A well-formed body that the fast path declines still goes through feedparser's strict parser,
    whose values resolve_markup_uris can resolve; an ill-formed one gets feedparser's loose parser.
    ``guid_base``: the root to resolve guid keys from when it is not the Content-Location header's
    (``FeedEntry.guid_key``).
    """
    if b"<!DOCTYPE" in body[:4096]:
        return None, False
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None, False
    if root is None or not charset_agrees(root, headers.get("content-type", "")):
        return None, root is not None
    base = headers.get("content-location", "")
    try:
        return read_root(root, base, headers.get("content-language"), guid_base), True
    except Unsupported:
        return None, True


def charset_agrees(root: Any, content_type: str) -> bool:
    """Whether feedparser would decode the body with the charset lxml used."""
    declared = (root.getroottree().docinfo.encoding or "utf-8").lower()
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    if match is None:
        # feedparser assumes US-ASCII for text/* without a charset (RFC 3023) and then repairs.
        return not content_type.lower().startswith("text/") or declared in ("utf-8", "us-ascii")
    try:
        return codecs.lookup(match.group(1)).name == codecs.lookup(declared).name
    except LookupError:
        return False


def read_root(
    root: Any, base: str, header_language: str | None, guid_base: str | None = None
) -> FeedDocument:
    """Read the feed under ``root``, or raise Unsupported."""
    tag = root.tag
    root_lang = lang_of(root, header_language)
    root_base = base_of(root, base)
    # feedparser takes a feed language from the root's xml:lang on <rss> and <feed>, not <rdf:RDF>.
    feed_lang = root_lang if tag in ("rss", f"{{{ATOM}}}feed") else header_language
    if tag == "rss":
        version = _RSS_VERSIONS.get((root.get("version") or "").strip())
        channel = root.find("channel")
        if version is None or channel is None or len(root) != 1:
            raise Unsupported("RSS version or layout")
        parent, entry_tag = channel, "item"
        feed = FeedReader(base_of(channel, root_base))
        lang = lang_of(channel, root_lang)
    elif tag == f"{{{RDF}}}RDF":
        namespace = next((ns for ns in (RSS1, RSS090) if root.find(f"{{{ns}}}channel") is not None), None)
        if namespace is None:
            raise Unsupported("RDF without an RSS 1.0 or 0.90 channel")
        version = "rss10" if namespace == RSS1 else "rss090"
        channel = root.find(f"{{{namespace}}}channel")
        feed = FeedReader(base_of(channel, root_base))
        for child in channel:
            feed.child(child)
        feed.base = root_base  # items are the root's children, outside the channel
        parent, entry_tag, lang = root, f"{{{namespace}}}item", root_lang
    elif tag == f"{{{ATOM}}}feed":
        version = "atom10"
        parent, entry_tag, lang = root, f"{{{ATOM}}}entry", root_lang
        feed = FeedReader(root_base)
    else:
        raise Unsupported("root element")
    atom, rss1 = version == "atom10", version in ("rss10", "rss090")
    entries = []
    for child in parent:
        if child.tag == entry_tag:
            reader = EntryReader(
                child, base_of(child, feed.base), lang_of(child, lang), atom, rss1, guid_base
            )
            reader.has_content = feed.has_content
            entries.append(reader.read())
            feed.has_content = False
        elif parent is not root or tag != f"{{{RDF}}}RDF":
            feed.child(child)
    meta = feed.meta
    # A channel's <language> replaces the root's xml:lang (or the Content-Language header).
    language = (
        meta["language"] if "language" in meta else (feed_lang.replace("_", "-") if feed_lang else None)
    )
    return FeedDocument(
        format=version,
        title=meta.get("title"),
        link=meta.get("link"),
        language=language,
        entries=tuple(entries),
        links=tuple(meta.get("links", ())),
    )


class FeedReader:
    """The feed-level children, in order, and the state feedparser carries from them into entries."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.meta: dict[str, Any] = {"links": []}
        self.has_summary = False
        # feedparser does not reset "has content" until an entry ends: a feed-level element read
        # as content makes the next entry take its summaries as summaries.
        self.has_content = False

    def child(self, child: Any) -> None:
        """Read one feed-level element that is not an entry."""
        if not isinstance(child.tag, str):
            return
        name = feedparser_name(child)
        meta = self.meta
        if name in ("title", "dc_title") and "title" not in meta:
            if (attribute(child, "type") or "text").lower() in ("xhtml", "application/xhtml+xml"):
                raise Unsupported("XHTML feed title")
            meta["title"] = element_text(child)
        elif name == "link":
            feed_link(child, base_of(child, self.base), meta)
        elif name in ("language", "dc_language"):
            meta["language"] = element_text(child)
        elif name == "id" and "link" not in meta and (attribute(child, "ispermalink") or "true") == "true":
            # feedparser treats an id like a permalink guid: the feed's link until one is seen.
            value = element_text(child)
            meta["link"] = join_url(base_of(child, self.base), value) if value else value
        elif name == "creativecommons_license":
            value = element_text(child)
            if value:
                meta["links"].append(("license", value))
        elif name == "cc_license":
            value = child.get(f"{{{RDF}}}resource")
            if value:
                meta["links"].append(("license", value))
        elif name in ("summary", "itunes_summary"):
            if self.has_summary and not self.has_content:
                self.has_content = True
            self.has_summary = True
        elif name in ("description", "dc_description", "media_description"):
            if self.has_summary and not self.has_content:
                self.has_content = True
        elif name in ("content", "content_encoded", "body", "xhtml_body", "fullitem"):
            self.has_content = True


def feed_link(child: Any, base: str, meta: dict[str, Any]) -> None:
    """A feed-level link: added to the feed's links, and its link if it is the HTML alternate."""
    href = href_of(child)
    rel = (attribute(child, "rel") or "alternate").lower()
    if href is None:  # a link element with text, as RSS has it
        text = link_text(child, base, feed_level=True)
        meta["link"] = text
        if text:
            meta["links"].append(("alternate", text))
        return
    href = join_url(base, href)
    meta["links"].append((rel.strip(), href))
    kind = (attribute(child, "type") or ("application/atom+xml" if rel == "self" else "text/html")).lower()
    if rel == "alternate" and map_content_type(kind) in HTML_TYPES:
        meta["link"] = href
