"""parse.feed and feedlake.tasks.parse.jsonfeed, on real captured feeds from tests/cases/corpus/."""

from __future__ import annotations

import base64
import csv
import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from feedlake.tasks.errors import ParseError
from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.normalize.html_text import html_to_text
from feedlake.tasks.parse.feed import document_base, parse_feed
from feedlake.tasks.parse.xml_fast_path import read_well_formed_feed
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult, ParsedFeed
from tests.support.paths import CASES
from tests.support.threaded_http import QuietHandler, serve_handler

CORPUS = CASES / "corpus"
with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as _manifest:
    MANIFEST = {row["saved_path"]: row["what_it_is"] for row in csv.DictReader(_manifest, delimiter="\t")}
DC = "{http://purl.org/dc/elements/1.1/}"


def parse(path: str, source_id: str = "test-source", url: str = "https://example.org/feed") -> ParsedFeed:
    body = (CORPUS / path).read_bytes()
    return parse_feed(
        FetchResult(source_id=source_id, url=url, fetched_at=datetime.now(UTC), body=body, headers={})
    )


def manifest_items(path: str) -> int:
    """The item count MANIFEST.tsv gives for a file."""
    found = re.search(r"items=(\d+)", MANIFEST[path])
    assert found is not None
    return int(found.group(1))


def item_titles(text: str) -> list[str]:
    """Titles of the <item>s of an RSS document, read with a regex instead of a feed parser."""
    titles = []
    for item in re.findall(r"<item\b.*?</item>", text, re.DOTALL):
        raw = re.search(r"<title>(.*?)</title>", item, re.DOTALL)
        assert raw is not None
        value = re.sub(r"^<!\[CDATA\[(.*)\]\]>$", r"\1", raw.group(1).strip(), flags=re.DOTALL)
        titles.append(html.unescape(value).strip())
    return titles


def test_af_mil_rss() -> None:
    path = "af.mil-mirror_TecnologiaNova/RSS3a26.ashx.xml"
    channel = ET.parse(CORPUS / path).getroot().find("channel")
    assert channel is not None
    items = channel.findall("item")
    feed = parse(path, "af-mil-news")
    assert (feed.source_id, feed.feed_url, feed.format, feed.warnings) == (
        "af-mil-news",
        "https://example.org/feed",
        "rss20",
        (),
    )
    assert (feed.title, feed.link, feed.language) == (
        channel.findtext("title"),
        channel.findtext("link"),
        channel.findtext("language"),
    )
    assert len(feed.entries) == len(items) == 20
    for entry, item in zip(feed.entries, items, strict=True):
        assert entry.title == (item.findtext("title") or "").strip()
        assert entry.link == item.findtext("link")
        assert entry.guid == item.findtext("guid")
        assert entry.authors == (item.findtext(f"{DC}creator"),)
        assert entry.published_raw == item.findtext("pubDate")
        assert entry.updated_raw is None  # the feed has no update dates; feedparser's alias is not one
        assert entry.published_parsed is not None and entry.published_parsed.year == 2016
        assert [(e.url, e.type, e.length) for e in entry.enclosures] == [
            (e.get("url"), e.get("type"), int(e.get("length", ""))) for e in item.findall("enclosure")
        ]
        assert entry.summary_is_html
        # feedparser re-serializes the markup (quotes, <br/>), so compare what it says and shows.
        description = item.findtext("description") or ""
        assert entry.summary is not None
        assert html_to_text(entry.summary) == html_to_text(description)
        image = re.compile(r"<img src=.([^'\"]+)")
        assert image.findall(entry.summary) == image.findall(description)
    assert sum(1 for e in feed.entries if e.enclosures) == 18


def test_atom_xml_base_resolves_relative_urls() -> None:
    raw = (CORPUS / "feed-rs/atom_xml_base.xml").read_text(encoding="utf-8")
    assert 'src="IMG_1232.jpeg"' in raw
    feed = parse("feed-rs/atom_xml_base.xml")
    assert feed.format == "atom10"
    (entry,) = feed.entries
    assert entry.content == '<p><img src="https://numi.st/post/2022/travel-uke/IMG_1232.jpeg" /></p>'
    assert entry.authors == ("Not Blank",)
    assert entry.updated_raw == "2022-04-21T00:00:00+00:00"
    assert entry.published_raw is None


def test_atom_feed_level_xml_base_resolves_root_relative_images() -> None:
    path = "fastfeedparser/e44e7aea7e34bb52.kottke.atom"
    raw = (CORPUS / path).read_text(encoding="utf-8")
    assert re.search(r'src="/cdn-cgi/', raw)
    feed = parse(path)
    assert len(feed.entries) == raw.count("<entry>")
    bodies = [e.content or "" for e in feed.entries]
    assert not any(re.search(r'(?:src|href)="/', body) for body in bodies)
    assert any('src="https://kottke.org/cdn-cgi/' in body for body in bodies)
    assert all(e.link and e.link.startswith("https://kottke.org/") for e in feed.entries)


def test_relative_links_without_xml_base_resolve_against_the_fetch_url() -> None:
    feed = parse("feedjira/SamRuby.xml", url="https://intertwingly.net/blog/index.atom")
    raw = (CORPUS / "feedjira/SamRuby.xml").read_text(encoding="utf-8")
    assert '<link href="/blog/2013/01/30/Plex"/>' in raw
    assert feed.entries[0].link == "https://intertwingly.net/blog/2013/01/30/Plex"


@pytest.mark.parametrize("path", ["feed-rs/jsonfeed_example_1.json", "RSParser/DaringFireball.json"])
def test_json_feed(path: str) -> None:
    document = json.loads((CORPUS / path).read_bytes())
    feed = parse(path, "daring-fireball")
    assert (feed.format, feed.title, feed.link) == ("json1", document["title"], document["home_page_url"])
    assert feed.warnings == ()
    assert len(feed.entries) == len(document["items"])
    for entry, item in zip(feed.entries, document["items"], strict=True):
        assert entry.guid == item["id"]
        assert entry.link == item["url"]
        assert entry.title == item["title"]
        assert entry.content == item["content_html"].strip() and entry.content_is_html
        assert entry.published_raw == item["date_published"]
        assert entry.updated_raw == item.get("date_modified")
        assert entry.authors == (item["author"]["name"],)


def test_rss_in_json_is_refused_by_name() -> None:
    with pytest.raises(ParseError, match="RSS-in-JSON") as raised:
        parse("RSParser/ScriptingNews.json", "scripting-news")
    assert raised.value.source_id == "scripting-news"


@pytest.mark.parametrize("path", ["feedjira/JoomlapoweredSite.xml", "feedjira/titleunknown.xml"])
def test_html_page_is_refused(path: str) -> None:
    with pytest.raises(ParseError, match="HTML page") as raised:
        parse(path, "not-a-feed")
    assert "source 'not-a-feed'" in str(raised.value)


def test_truncated_feed_without_items_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no readable entries") as raised:
        parse("feed-rs/rss_2.0_invalid_1.xml", "reuters")
    assert raised.value.source_id == "reuters"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("fastfeedparser/osm-pl.xml", "unclosed CDATA section"),
        ("feedjira/SamRuby.xml", "XML or text declaration not at start of entity"),
    ],
)
def test_ill_formed_but_readable_gives_entries_and_a_warning(path: str, problem: str) -> None:
    feed = parse(path)
    items = manifest_items(path)
    assert len(feed.entries) == items > 0
    assert all(e.title for e in feed.entries)
    assert len(feed.warnings) == 1
    assert feed.warnings[0].startswith(f"ill-formed XML, read {items} entries anyway")
    assert problem in feed.warnings[0]


def test_windows_1251_cyrillic() -> None:
    path = "miniflux-v2/encoding_WINDOWS-1251.xml"
    raw = (CORPUS / path).read_bytes()
    assert b'encoding="windows-1251"' in raw.lower()
    feed = parse(path)
    assert [e.title for e in feed.entries] == item_titles(raw.decode("cp1251"))
    assert feed.entries[0].title == "Цитата #17703"
    assert all(re.search("[а-яА-Я]", e.summary or "") for e in feed.entries)


def test_undeclared_iso_8859_1_is_decoded_without_replacement_characters() -> None:
    path = "miniflux-v2/no_encoding_ISO-8859-1.xml"
    raw = (CORPUS / path).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    feed = parse(path)
    assert [e.title for e in feed.entries] == item_titles(raw.decode("latin-1"))
    text = "".join((e.title or "") + (e.summary or "") for e in feed.entries)
    assert "\ufffd" not in text
    assert "criminalité liée surtout à" in text
    assert "études" in text


def test_gb2312_chinese() -> None:
    path = "RSParser/kc0011.rss"
    raw = (CORPUS / path).read_bytes()
    feed = parse(path)
    assert feed.title == "投资资讯网交易在线--流通纪念币最新20篇论坛主题-全文"
    assert [e.title for e in feed.entries] == item_titles(raw.decode("gb2312"))
    assert len(feed.entries) == 20
    assert all(re.search("[\u4e00-\u9fff]", e.title or "") for e in feed.entries)


def test_utf16_declaration_over_utf8_bytes() -> None:
    path = "fastfeedparser/9e0834333e854116.eliot-jones-utf16.xml"
    raw = (CORPUS / path).read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-16"?>')  # but the bytes are UTF-8
    feed = parse(path)
    assert len(feed.entries) == manifest_items(path)
    assert feed.entries[0].title == item_titles(raw.decode("utf-8"))[0]


def test_entity_declarations_are_refused_in_any_encoding() -> None:
    doc = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss version="2.0"/>'
    for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
        fetched = FetchResult(
            source_id="bomb",
            url="https://example.org/f",
            fetched_at=datetime.now(UTC),
            body=doc.encode(encoding),
        )
        with pytest.raises(ParseError, match="declares XML entities"):
            parse_feed(fetched)


def test_no_body_is_a_parse_error() -> None:
    empty = FetchResult(source_id="s", url="https://example.org/feed", fetched_at=datetime.now(UTC))
    with pytest.raises(ParseError, match="no body"):
        parse_feed(empty)


def json_body(body: bytes) -> FetchResult:
    return FetchResult("json-src", "https://example.org/feed.json", datetime.now(UTC), body=body)


JSON_FEED_11 = b"""\xef\xbb\xbf{"version": "https://jsonfeed.org/version/1.1", "language": "de",
 "home_page_url": "https://blog.example.org/", "authors": [{"name": "Feed Author"}],
 "items": [{"id": 1, "url": "/posts/1", "content_text": "Plain body", "tags": ["a", "b", "a", ""],
            "attachments": [{"url": "media/1.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 9}]},
           "not an item"]}"""


def test_json_feed_details_resolved_against_home_page() -> None:
    feed = parse_feed(json_body(JSON_FEED_11))
    assert (feed.format, feed.language) == ("json11", "de")
    (entry,) = feed.entries
    assert (entry.guid, entry.link) == ("1", "https://blog.example.org/posts/1")
    assert (entry.content, entry.content_is_html) == ("Plain body", False)
    assert entry.authors == ("Feed Author",)
    assert entry.categories == ("a", "b")
    assert [(e.url, e.type, e.length) for e in entry.enclosures] == [
        ("https://blog.example.org/media/1.mp3", "audio/mpeg", 9)
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"items": [', "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"title": "no version"}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1"}', "no 'items' list"),
    ],
)
def test_json_that_is_not_a_json_feed(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as raised:
        parse_feed(json_body(body))
    assert raised.value.source_id == "json-src"


def _refusable(what_it_is: str) -> bool:
    return "items=0;" in what_it_is or "NOT-WELLFORMED" in what_it_is or "not JSON Feed" in what_it_is


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(MANIFEST))
def test_every_corpus_file_parses_or_fails_cleanly(path: str) -> None:
    source_id = "corpus-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    try:
        feed = parse(path, source_id)
    except ParseError as exc:
        assert exc.source_id == source_id
        assert f"source {source_id!r}" in str(exc)
        # Only a file the manifest calls empty, ill-formed or not a feed may be refused.
        assert _refusable(MANIFEST[path]), MANIFEST[path]
        return
    assert isinstance(feed, ParsedFeed)
    assert feed.source_id == source_id
    assert len(feed.entries) == manifest_items(path)


# --- Content-Location as the base URL (RFC 2616 14.14, as feedparser reads it) -------------------

ANSWERED = "https://news.example.org/feeds/latest"
MOVED_BASE = "https://news.example.org/archive/2024/"
BASE_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><id>urn:f</id><link href="./"/>
<entry><id>story-1</id><title>one</title><link href="story-1.html"/>
 <link rel="enclosure" href="media/one.mp3" type="audio/mpeg"/>
 <content type="html">&lt;p&gt;&lt;a href="../img/a.png"&gt;picture&lt;/a&gt;&lt;/p&gt;</content></entry>
<entry xml:base="https://cdn.example.net/x/"><id>story-2</id><title>two</title>
 <link href="story-2.html"/></entry>
</feed>"""


def fetched_with(body: bytes, headers: dict[str, str], status: int | None = 200) -> FetchResult:
    """A body as the fetch stage hands it over: the URL asked, the URL that answered, the headers."""
    return FetchResult(
        "cl-src",
        "https://news.example.org/feed",
        datetime(2026, 11, 24, tzinfo=UTC),
        final_url=ANSWERED,
        status=status,
        body=body,
        headers=headers,
    )


@pytest.mark.parametrize("fast_path", [True, False])
def test_content_location_is_the_base_of_links_guids_markup_and_enclosures(fast_path: bool) -> None:
    # Both readers read this document (the fast path does not decline it).
    assert read_well_formed_feed(BASE_ATOM, {"content-location": MOVED_BASE + "feed.xml"}) is not None
    feed = parse_feed(fetched_with(BASE_ATOM, {"Content-Location": "/archive/2024/feed.xml"}), fast_path)
    assert feed.feed_url == "https://news.example.org/feed"  # the URL fetched, whatever the base
    assert feed.link == MOVED_BASE
    one, two = feed.entries
    assert one.link == MOVED_BASE + "story-1.html"
    assert one.guid == "story-1"  # as written: a guid is no link to resolve
    assert [e.url for e in one.enclosures] == [MOVED_BASE + "media/one.mp3"]
    assert one.content is not None and 'href="https://news.example.org/archive/img/a.png"' in one.content
    # xml:base in the document wins inside its scope.
    assert two.link == "https://cdn.example.net/x/story-2.html"


@pytest.mark.parametrize(
    ("headers", "status", "base"),
    [
        ({"content-location": "/archive/2024/feed.xml"}, 200, MOVED_BASE + "feed.xml"),
        (
            {"Content-Location": " https://mirror.example.com/f.xml "},
            None,
            "https://mirror.example.com/f.xml",
        ),
        ({"content-location": "feed.xml"}, 203, "https://news.example.org/feeds/feed.xml"),
        ({}, 200, ANSWERED),
        ({"content-location": "javascript:alert(1)"}, 200, ANSWERED),
        ({"content-location": "data:text/html,x"}, 200, ANSWERED),
        ({"content-location": "http://[bad"}, 200, ANSWERED),
        ({"content-location": "   "}, 200, ANSWERED),
        # A Content-Location of another status names something else than this body.
        ({"content-location": "/created/1"}, 201, ANSWERED),
    ],
)
def test_document_base(headers: dict[str, str], status: int | None, base: str) -> None:
    assert document_base(fetched_with(b"<rss/>", headers, status)) == base


def test_a_json_feed_resolves_against_content_location_too() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "url": "p/1"}]}'
    feed = parse_feed(fetched_with(body, {"content-location": "/archive/2024/feed.json"}))
    assert [e.link for e in feed.entries] == [MOVED_BASE + "p/1"]


class ContentLocationHandler(QuietHandler):
    """Serves BASE_ATOM at any path, naming it with a relative Content-Location."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_body(
            200,
            BASE_ATOM,
            {"Content-Type": "application/atom+xml", "Content-Location": "/archive/2024/feed.xml"},
        )


def test_a_fetched_feed_resolves_against_the_content_location_its_server_gave() -> None:
    with serve_handler(ContentLocationHandler) as server:
        source = Source(id="cl", url=f"{server}/feeds/latest", name="cl", publisher="p", kind="news")
        [fetched] = fetch_feeds_blocking([source], {}, FeedlakeSettings())
    batch = normalize_feed(parse_feed(fetched), source, "run")
    assert batch.column("url").to_pylist() == [
        f"{server}/archive/2024/story-1.html",
        "https://cdn.example.net/x/story-2.html",
    ]
    assert batch.column("feed_url").to_pylist() == [source.url] * 2
    assert batch.column("guid").to_pylist() == ["story-1", "story-2"]
    assert batch.column("enclosures").to_pylist()[0] == [
        {"url": f"{server}/archive/2024/media/one.mp3", "type": "audio/mpeg", "length": None}
    ]


# --- content that is base64 (RFC 4287 4.1.3.3; Atom 0.3 mode="base64") ---------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()


def atom_content(*contents: str, namespace: str = "http://www.w3.org/2005/Atom") -> bytes:
    """An Atom document with one entry per content element, each with a plain-text summary."""
    entries = "".join(
        f"<entry><id>urn:{n}</id><title>t{n}</title><summary>summary {n}</summary>{c}</entry>"
        for n, c in enumerate(contents)
    )
    return f'<feed xmlns="{namespace}"><title>F</title><id>urn:f</id>{entries}</feed>'.encode()


BINARY_AND_BASE64 = atom_content(
    f'<content type="application/octet-stream">{PNG}</content>',
    f'<content type="image/png">\n{PNG[:20]}\n{PNG[20:]}\n</content>',
    '<content type="image/png">not base64 at all!</content>',
    '<content type="text/html" mode="base64">'
    + base64.b64encode("<p>Hello <b>wörld</b></p>".encode()).decode()
    + "</content>",
    '<content type="text/plain" mode="base64">%%% not base64 %%%</content>',
    '<content type="text/markdown">x &lt;y&gt; z</content>',
)


@pytest.mark.parametrize("fast_path", [True, False])
def test_base64_content_is_decoded_or_kept_out_of_the_text(fast_path: bool) -> None:
    fetched = FetchResult(
        "b64", "https://example.org/f", datetime(2026, 11, 24, tzinfo=UTC), body=BINARY_AND_BASE64
    )
    feed = parse_feed(fetched, fast_path)
    assert feed.warnings == ()  # a bad base64 string is not the feed's problem
    batch = normalize_feed(feed, Source("b64", "https://example.org/f", "b", "p", "news"), "run")
    texts = batch.column("content_text").to_pylist()
    html = batch.column("content_html").to_pylist()
    # A file of a binary media type is no text: the entry's text is its summary.
    assert texts[:3] == ["summary 0", "summary 1", "summary 2"]
    assert not any(PNG[:8] in (value or "") for value in texts + html)
    # mode="base64" text is decoded and read as its type says.
    assert texts[3] == "Hello wörld" and html[3] is not None and "<b>wörld</b>" in html[3]
    # Text that does not decode is kept as written, as feedparser keeps it.
    assert texts[4] == "%%% not base64 %%%"
    # text/* other than HTML is text: its angle brackets are characters.
    assert (texts[5], html[5]) == ("x <y> z", None)


def test_atom_03_base64_content_is_decoded() -> None:
    encoded = base64.b64encode(b"<p>Atom 0.3 body</p>").decode()
    body = atom_content(
        f'<content type="text/html" mode="base64">{encoded}</content>', namespace="http://purl.org/atom/ns#"
    )
    (entry,) = parse_feed(FetchResult("a03", "https://example.org/f", datetime.now(UTC), body=body)).entries
    assert (entry.content, entry.content_is_html) == ("<p>Atom 0.3 body</p>", True)
