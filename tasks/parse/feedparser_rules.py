"""feedparser's reading rules, for the lxml fast path: names, handlers, repairs, URL resolution.

feedparser dispatches each element on a name built from its namespace's standard prefix and its
local name, and applies fixed rules to every value: the UTF-8 mojibake and cp1252 repairs, xml:base
joins, "looks like HTML" guesses, resolving URLs inside markup. The fast path (``parse_xml``)
applies the same rules through these functions, so both paths give the same rows.
"""

from __future__ import annotations

import contextlib
import html
import html.entities
import re
from collections.abc import Sequence
from typing import Any

from feedparser.api import StrictFeedParser
from feedparser.sanitizer import _HTMLSanitizer
from feedparser.urls import RelativeURIResolver, make_safe_absolute_uri
from feedparser.urls import _urljoin as feedparser_urljoin
from feedparser.urls import resolve_relative_uris as feedparser_resolve_relative_uris

ATOM = "http://www.w3.org/2005/Atom"
RSS1 = "http://purl.org/rss/1.0/"
RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
IANA_RELATIONS = "http://www.iana.org/assignments/relation/"
URL_ATTRIBUTES = ("url", "uri", "href")
PLAIN_OR_HTML = frozenset({"text/plain", "text/html"})
# feedparser's repair of C1 control characters: windows-1252 meant, Latin-1 declared.
_CP1252 = {c: bytes([c]).decode("cp1252", errors="ignore") or chr(c) for c in range(128, 160)}
# An absolute http(s) URL that feedparser's join would return unchanged: no empty query, fragment
# or parameters to drop, no extra slashes to fold. Joining costs two urlparse calls; this skips them.
_PLAIN_ABSOLUTE_URL = re.compile(r"https?://[^\s/?#;]+(?:/[^\s?#;]*)?(?:\?[^\s#]+)?(?:#\S+)?\Z")
_C1_CONTROL = re.compile("[\x80-\x9f]")
_LINK_ENTITY = re.compile(r"&([A-Za-z0-9_]+);")
_CLOSE_TAG = re.compile(r"</(\w+)>")
_ENTITY_REF = re.compile(r"&#?\w+;")
_TAG_NAME = re.compile(r"</?(\w+)")
_NAMED_ENTITY = re.compile(r"&(\w+);")
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# The (element, attribute) pairs feedparser's resolver makes absolute in embedded HTML.
_URI_ATTRIBUTES = frozenset(RelativeURIResolver.relative_uris)
_URI_ELEMENTS = frozenset(tag for tag, _ in _URI_ATTRIBUTES)
_VOID_END_TAG = re.compile(
    r"</(?:area|base|br|col|embed|hr|img|input|keygen|link|meta|param|source|track|wbr)\s*>", re.I
)
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*)?>")
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)""")
# Markup whose inside is raw text in HTML: how feedparser's resolver re-serializes it shows in the
# text we extract, so such values take the same resolver.
_RAW_TEXT_ELEMENT = re.compile(r"<(?:iframe|textarea|xmp|noembed|noframes|plaintext)\b", re.I)

_STANDARD_PREFIXES = {k.lower(): v for k, v in StrictFeedParser.namespaces.items()}
# feedparser handler names that set the fields a FeedEntry holds, and what each does here.
HANDLERS = {
    **dict.fromkeys(("title", "dc_title"), "title"),
    "link": "link",
    **dict.fromkeys(("guid", "id"), "guid"),
    **dict.fromkeys(("description", "dc_description"), "description"),
    **dict.fromkeys(("summary", "itunes_summary"), "summary"),
    "content": "content",
    "content_encoded": "content_html",
    **dict.fromkeys(("pubdate", "published", "issued", "dcterms_issued"), "published"),
    **dict.fromkeys(("updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"), "updated"),
    **dict.fromkeys(("created", "dcterms_created"), "created"),
    **dict.fromkeys(("author", "managingeditor", "dc_creator", "dc_author", "itunes_author"), "author"),
    **dict.fromkeys(("category", "keywords", "dc_subject"), "category"),
    "media_category": "media_category",
    "itunes_category": "itunes_category",
    "itunes_keywords": "itunes_keywords",
    "media_keywords": "media_keywords",
    "media_title": "media_title",
    "media_description": "description",
    "enclosure": "enclosure",
    "source": "source",
    **dict.fromkeys(("language", "dc_language"), "language"),
}
# feedparser handlers checked to touch none of those fields (they fill keys feedlake never reads).
INERT_HANDLERS = frozenset(
    {
        "subtitle",
        "tagline",
        "itunes_subtitle",
        "rights",
        "copyright",
        "dc_rights",
        "info",
        "feedburner_browserfriendly",
        "generator",
        "contributor",
        "dc_contributor",
        "dc_publisher",
        "webmaster",
        "itunes_image",
        "itunes_link",
        "itunes_explicit",
        "itunes_block",
        "itunes_owner",
        "itunes_name",
        "itunes_email",
        "cloud",
        "expirationdate",
        "newlocation",
        "media_content",
        "media_thumbnail",
        "media_player",
        "media_rating",
        "media_restriction",
        "media_license",
        "media_credit",
        "psc_chapters",
        "psc_chapter",
        "georss_point",
        "georss_line",
        "georss_polygon",
        "georss_box",
        "georss_where",
        "gml_point",
        "gml_linestring",
        "gml_polygon",
        "gml_exterior",
        "gml_linearring",
        "gml_pos",
        "gml_poslist",
        "cc_license",
        "creativecommons_license",
        "admin_generatoragent",
        "admin_errorreportsto",
        "dcterms_valid",
        "url",
        "homepage",
        "uri",
        "name",
        "email",
        "width",
        "height",
        "media_group",
    }
)


# Handlers that file their children away from the entry's fields: skipped whole.
OPAQUE = frozenset({"contributor", "dc_contributor", "itunes_owner", "psc_chapters"})


class Unsupported(Exception):
    """The document uses something this fast path does not model: feedparser reads it instead."""


def lang_of(element: Any, inherited: str | None) -> str | None:
    """The xml:lang in force at ``element``: its own, else the inherited one ('' clears it)."""
    lang = element.get(XML_LANG)
    lang = attribute(element, "lang") if lang is None else lang
    if lang == "":
        return None
    return inherited if lang is None else lang


def element_text(element: Any) -> str:
    """A childless element's text, stripped and repaired; markup inside makes the path decline."""
    if len(element):
        raise Unsupported("markup inside a text element")
    # With comments and PIs removed at parse time, .text holds all of a childless element's text.
    return repair((element.text or "").strip())


def repair(value: str) -> str:
    """feedparser's repairs of every value: double-encoded UTF-8 undone, cp1252 control points mapped."""
    # feedparser's strict parser decodes to UTF-8 and then undoes double-encoded UTF-8 and maps
    # windows-1252 control points; it does so for every value, so the fast path must too.
    if value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_CP1252) if _C1_CONTROL.search(value) else value


def join_url(base: str, value: str) -> str:
    """feedparser's URL join (its slash repair, then urljoin), skipped for plain absolute URLs."""
    if _PLAIN_ABSOLUTE_URL.match(value):
        return value
    return str(feedparser_urljoin(base, value))


def safe_absolute(base: str, value: str) -> str:
    """feedparser's make_safe_absolute_uri, skipped for plain absolute URLs."""
    # feedparser's make_safe_absolute_uri, with the same shortcut.
    if base and _PLAIN_ABSOLUTE_URL.match(value):
        return value
    return str(make_safe_absolute_uri(base, value))


def attribute(element: Any, name: str) -> str | None:
    """An attribute by its lowercased name, as feedparser (which lowercases every name) sees it."""
    value: str | None = element.get(name)
    if value is None and element.attrib:
        value = next((v for k, v in element.attrib.items() if k.lower() == name), None)
    return value


def href_of(element: Any) -> str | None:
    """An element's URL attribute as feedparser finds it: url, else uri, else href (blank ones skipped)."""
    # A blank href is no URL: resolved, it would name the feed document itself (RFC 3986 5.2).
    return next((v for v in (attribute(element, n) for n in URL_ATTRIBUTES) if v and v.strip()), None)


def is_alternate(rel: str) -> bool:
    """Whether a link relation (as lowercased by feedparser) says the link is the entry's own page."""
    # RFC 4287 4.2.7.2: no rel means "alternate"; an empty one names no relation either, and the
    # IANA IRI form is the same relation.
    return rel in ("alternate", "", IANA_RELATIONS + "alternate")


def is_html_type(kind: str | None) -> bool:
    """Whether a link's type names an HTML page (no type: it does, as feedparser assumes)."""
    if kind is None:
        return True
    return map_content_type(kind.split(";", 1)[0].strip()) in HTML_TYPES


def article_link(links: Sequence[tuple[str, str | None, str]], permalink: str | None) -> str | None:
    """The entry's article link from its links (rel, type, absolute href) in document order.

    The first alternate HTML link, else the first alternate of another type (a PDF press release:
    feedparser drops it, and nothing else keeps it), else the guid when it is a permalink. An
    enclosure or any other relation never is the article. feedparser keeps the last alternate
    instead, and lets a later link with no href (or a blank one, which it resolves to the feed's
    own URL) or a rel="enclosure" link written as text replace it.
    """
    alternates = [(kind, href) for rel, kind, href in links if href and is_alternate(rel)]
    html = next((href for kind, href in alternates if is_html_type(kind)), None)
    return html or next((href for _, href in alternates), None) or permalink


def content_is_text(kind: str) -> bool:
    """Whether content of this type is text or markup (False: base64 of a binary media type).

    RFC 4287 4.1.3.3: text/* is text, an XML media type is markup, any other media type is
    base64 of that type. A type that is not a media type at all ("html", "", junk) is read as text.
    """
    essence = map_content_type(kind.split(";", 1)[0].strip())
    return "/" not in essence or essence.startswith("text/") or essence.endswith(("+xml", "/xml"))


def is_markup_type(kind: str) -> bool:
    """Whether a text construct of this type holds markup (HTML, XHTML or another XML type)."""
    essence = map_content_type(kind.split(";", 1)[0].strip())
    if essence.startswith("text/"):
        return essence == "text/html" or essence.endswith(("+xml", "/xml"))
    # Not text/*: HTML, XML, binary, or no media type at all (read as HTML, as feedparser does).
    return True


def link_text(element: Any, base: str, feed_level: bool = False) -> str:
    """A <link> element's text as feedparser stores it: joined to the base, entity slips repaired."""
    output = element_text(element)
    if output:
        output = join_url(base, output)
    if "&" not in output:
        return output
    if not feed_level:  # feedparser repairs "&amp;" in entry links only
        output = output.replace("&amp;", "&")
    return _LINK_ENTITY.sub(r"&\g<1>", output)


def map_content_type(value: str) -> str:
    """A type attribute as a MIME type: text, html and xhtml mapped as feedparser maps them."""
    value = value.lower()
    return {"text": "text/plain", "plain": "text/plain", "html": "text/html"}.get(
        value, "application/xhtml+xml" if value == "xhtml" else value
    )


def looks_like_html(value: str) -> bool:
    """feedparser's guess that a nominally plain RSS value is HTML."""
    # feedparser's guess for RSS fields that are nominally plain text.
    if not (_CLOSE_TAG.search(value) or _ENTITY_REF.search(value)):
        return False
    if any(t.lower() not in _HTMLSanitizer.acceptable_elements for t in _TAG_NAME.findall(value)):
        return False
    return all(e in html.entities.entitydefs for e in _NAMED_ENTITY.findall(value))


def resolve_markup_uris(markup: str, base: str, kind: str = "text/html") -> str:
    """Resolve URLs in HTML as feedparser does: its own resolver only where raw-text elements are."""
    if _RAW_TEXT_ELEMENT.search(markup):
        # Inside <iframe> and the like, how a resolver re-serializes markup shows in the text.
        return str(feedparser_resolve_relative_uris(markup, base, "utf-8", kind))
    return resolve_uris(markup, base)


def resolve_uris(markup: str, base: str) -> str:
    """Make link and media URLs in markup absolute against ``base``, as feedparser's resolver does.

    feedparser's resolver re-parses and re-serializes the markup in Python (slow); this rewrites
    only the attribute values, and the nh3 sanitizer normalizes the rest the same way later.
    """

    def resolve_tag(match: re.Match[str]) -> str:
        name, attributes = match.group(1).lower(), match.group(2)
        if name not in _URI_ELEMENTS or not attributes:
            return match.group(0)

        def resolve_attribute(found: re.Match[str]) -> str:
            key = found.group(1).lower()
            if (name, key) not in _URI_ATTRIBUTES:
                return found.group(0)
            raw = found.group(3)
            value = html.unescape(raw[1:-1] if raw[0] in "\"'" else raw)
            resolved = safe_absolute(base, value.strip()) or value
            return f'{found.group(1)}{found.group(2)}"{html.escape(resolved, quote=True)}"'

        return f"<{match.group(1)}{_ATTRIBUTE.sub(resolve_attribute, attributes)}>"

    # feedparser's resolver drops end tags of void elements (</br>), which HTML reads as <br>.
    return _START_TAG.sub(resolve_tag, _VOID_END_TAG.sub("", markup) if "</" in markup else markup)


def own_text(element: Any) -> str:
    """The character data directly inside an element (not its children's), as feedparser collects it."""
    # The character data directly inside an element (not its children's), as feedparser collects it.
    pieces = [element.text or ""] + [child.tail or "" for child in element]
    return repair("".join(pieces).strip())


def feedparser_name(element: Any) -> str:
    """The name feedparser dispatches an element on: its standard prefix (or the document's) + local."""
    tag = element.tag
    namespace, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    lowered = namespace.lower()
    if "backend.userland.com/rss" in lowered:
        lowered = "http://backend.userland.com/rss"
    prefix = _STANDARD_PREFIXES.get(lowered, element.prefix)
    return f"{prefix.lower()}_{local.lower()}" if prefix else local.lower()


def check_inert(element: Any, name: str, within_source: bool = False) -> None:
    """Decline unless nothing in ``element`` could reach an entry's fields through a feedparser handler."""
    # An element whose children feedparser files elsewhere (a contributor's name, a source's title)
    # is skipped whole, as long as nothing inside it could reach the entry's own fields.
    if not within_source and name not in INERT_HANDLERS and has_handler(name):
        raise Unsupported(f"element {name}")
    for descendant in element.iterdescendants():
        if within_source:
            break
        if isinstance(descendant.tag, str):
            inner = feedparser_name(descendant)
            if inner in HANDLERS or (inner not in INERT_HANDLERS and has_handler(inner)):
                raise Unsupported(f"element {inner} inside {name}")


def has_handler(name: str) -> bool:
    """Whether feedparser has a start or end handler for an element name."""
    return hasattr(StrictFeedParser, "_start_" + name) or hasattr(StrictFeedParser, "_end_" + name)


def base_of(element: Any, inherited: str) -> str:
    """The base URL in force at ``element``, by feedparser's xml:base rule."""
    # feedparser's xml:base rule (the unprefixed "base" attribute counts too).
    value = element.get(XML_BASE) or attribute(element, "base")
    if not value:
        return inherited
    if inherited:
        return make_safe_absolute_uri(inherited, value) or inherited
    return str(feedparser_urljoin(inherited, value))


def split_author(text: str, detail: dict[str, str]) -> None:
    """feedparser's reading of an RSS author string such as "jane@example.com (Jane Doe)"."""
    # feedparser's reading of RSS authors: "jane@example.com (Jane Doe)" and the like.
    author, email = text, None
    match = _EMAIL.search(author)
    if match:
        email = match.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
        author = author.strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    if author:
        detail["name"] = author
    if email:
        detail["email"] = email
