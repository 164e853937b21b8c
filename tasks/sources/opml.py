"""OPML: read the subscription lists feed readers export, and write one they import.

Input of ``read_opml``: the bytes of an OPML 1.0/2.0 file (Miniflux, FreshRSS, Feedly, NetNewsWire,
...). Output: one ``OpmlFeed`` per outline with an ``xmlUrl``, in document order, with the titles of
the folders it sits in. ``write_opml`` turns sources into OPML 2.0 with one folder per first tag.
lxml reads the file with entities unresolved, no DTD and no network: a subscription list from
elsewhere is untrusted input, so a file that declares entities (in any encoding), is larger than
``MAX_OPML_BYTES``, lists more than ``MAX_OPML_FEEDS`` feeds or nests outlines deeper than
``MAX_FOLDER_DEPTH`` is refused with a ConfigError, and titles are cut to ``MAX_TITLE_CHARS``.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.sources.catalog import Source

# A reader's export nests folders two or three deep; anything far deeper is not a subscription list.
MAX_FOLDER_DEPTH = 32
PROLOG_BYTES = 64 * 1024
# Readers' exports of thousands of feeds are a few hundred KiB; parsing a huge file holds it all in memory.
MAX_OPML_BYTES = 8 * 1024 * 1024
MAX_OPML_FEEDS = 10_000
MAX_TITLE_CHARS = 300


@dataclass(frozen=True)
class OpmlFeed:
    """One subscription of an OPML file: its feed URL, title, site and enclosing folders."""

    url: str
    title: str | None
    site_url: str | None
    folders: tuple[str, ...]
    line: int


def read_opml(data: bytes, origin: str = "<opml>") -> tuple[OpmlFeed, ...]:
    """Every feed outline of an OPML document, raising ConfigError if it is not OPML."""
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError(f"OPML file {origin} is larger than {MAX_OPML_BYTES} bytes; refused")
    if b"<!ENTITY" in data[:PROLOG_BYTES].upper():
        # Subscription lists never need entities; declaring them is how XML bombs start.
        raise ConfigError(f"OPML file {origin} declares XML entities; refused (possible XML bomb)")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"OPML file {origin} is not well-formed XML: {exc}") from exc
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        # The prolog check misses a UTF-16 file or a long DOCTYPE; libxml2 still expands entities
        # in attribute values even with resolve_entities=False.
        raise ConfigError(f"OPML file {origin} declares XML entities; refused (possible XML bomb)")
    if not isinstance(root.tag, str) or etree.QName(root).localname.lower() != "opml":
        raise ConfigError(f"OPML file {origin} has no <opml> root element")
    body = next((child for child in root if _name(child) == "body"), None)
    if body is None:
        raise ConfigError(f"OPML file {origin} has no <body> element")
    feeds: list[OpmlFeed] = []
    for feed in _feeds(body, (), 0, origin):
        if len(feeds) == MAX_OPML_FEEDS:
            raise ConfigError(f"OPML file {origin} lists more than {MAX_OPML_FEEDS} feeds; split it")
        feeds.append(feed)
    return tuple(feeds)


def write_opml(sources: Sequence[Source], title: str = "feedlake sources") -> bytes:
    """OPML 2.0 listing ``sources`` (URLs in their display form), one folder per first tag."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = email.utils.format_datetime(datetime.now(UTC))
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for source in sources:
        parent = body
        if source.tags:
            folder = source.tags[0]
            if folder not in folders:
                folders[folder] = etree.SubElement(body, "outline", text=_xml_text(folder))
            parent = folders[folder]
        name = _xml_text(source.name)
        etree.SubElement(
            parent, "outline", type="rss", text=name, title=name, xmlUrl=_xml_text(source.display_url)
        )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _name(element: etree._Element) -> str:
    return etree.QName(element).localname.lower() if isinstance(element.tag, str) else ""


def _feeds(parent: etree._Element, folders: tuple[str, ...], depth: int, origin: str) -> Iterator[OpmlFeed]:
    if depth > MAX_FOLDER_DEPTH:
        raise ConfigError(f"OPML file {origin}: outlines nested deeper than {MAX_FOLDER_DEPTH} levels")
    for outline in parent:
        if _name(outline) != "outline":
            continue
        # Readers differ in attribute case (xmlUrl, xmlurl) and some add namespaced ones.
        attrs = {etree.QName(k).localname.lower(): v.strip() for k, v in outline.attrib.items()}
        title = " ".join((attrs.get("title") or attrs.get("text") or "").split())[:MAX_TITLE_CHARS] or None
        url = attrs.get("xmlurl")
        if url:
            yield OpmlFeed(url, title, attrs.get("htmlurl") or None, folders, outline.sourceline or 0)
        inner = (*folders, title) if title and not url else folders
        yield from _feeds(outline, inner, depth + 1, origin)


def _xml_text(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped; a reader would reject the file.
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 32)
