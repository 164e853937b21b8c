"""sources.opml: reading readers' OPML exports and writing OPML 2.0 they import."""

from __future__ import annotations

import email.utils

import pytest
from lxml import etree

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.sources.opml import (
    MAX_OPML_BYTES,
    MAX_OPML_FEEDS,
    MAX_TITLE_CHARS,
    OpmlFeed,
    read_opml,
    write_opml,
)
from tests.support.paths import CASES

CASES = CASES / "opml"


def test_miniflux_export_reads_every_feed_with_its_category() -> None:
    feeds = read_opml((CASES / "miniflux.opml").read_bytes(), "miniflux.opml")
    assert [(f.title, f.folders) for f in feeds] == [
        ("Ars Technica - All content", ("All",)),
        ("Daring Fireball", ("All",)),
        ("BBC News - World", ("News",)),
        ("Süddeutsche Zeitung: Politik", ("News",)),
        ("UN News & Updates", ("News",)),
    ]
    assert feeds[0].url == "https://feeds.arstechnica.com/arstechnica/index"
    assert feeds[0].site_url == "https://arstechnica.com"
    assert feeds[0].line == 9


def test_freshrss_export_reads_nested_folders_and_namespaced_attributes() -> None:
    feeds = read_opml((CASES / "freshrss.opml").read_bytes())
    by_title = {f.title: f for f in feeds}
    assert len(feeds) == 6
    assert by_title["The Go Blog"].folders == ("Tech", "Go")
    assert by_title["The Go Blog"].url == "https://go.dev/blog/feed.atom"
    assert by_title["research!rsc"].folders == ("Tech",)
    assert by_title["Scripting News"].folders == ("Uncategorized",)
    # An empty htmlUrl is no site.
    assert by_title["Broken entry"].site_url is None


def test_outlines_without_title_or_folder_and_odd_attribute_case() -> None:
    data = (
        b'<opml version="1.0"><head/><body>'
        b'<outline xmlurl=" https://a.org/feed " />'
        b'<outline><outline text="  Spaced\n  title " xmlUrl="https://b.org/rss"/></outline>'
        b"</body></opml>"
    )
    assert read_opml(data) == (
        OpmlFeed("https://a.org/feed", None, None, (), 1),
        OpmlFeed("https://b.org/rss", "Spaced title", None, (), 2),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline", "not well-formed XML"),
        (b"<rss><channel/></rss>", "no <opml> root"),
        (b"<opml><head/></opml>", "no <body>"),
    ],
)
def test_what_is_not_opml_is_a_config_error(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_opml(data, "subs.opml")


@pytest.mark.parametrize(
    "declaration",
    [
        b'<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">',
        b'<!ENTITY b SYSTEM "file:///etc/passwd">',
    ],
)
def test_entity_declarations_are_refused(declaration: bytes) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE opml [' + declaration + b"]>"
        b'<opml><body><outline text="&b;" xmlUrl="https://a.org/feed"/></body></opml>'
    )
    with pytest.raises(ConfigError, match="declares XML entities"):
        read_opml(bomb, "bomb.opml")


def test_written_opml_is_opml_2_and_round_trips() -> None:
    sources = [
        Source("gov", "https://gov.example/rss", "Gov & Co <News>", "Gov", "official", tags=("official",)),
        Source("blog", "https://blog.example/feed", "A blog\x01", "Me", "blog"),
        Source(
            "secret",
            "https://x.example/feed?token=t0k3n",
            "Private",
            "X",
            "news",
            tags=("official", "more"),
            substitutions=(("FEEDLAKE_VAR_TOKEN", "t0k3n"),),
        ),
    ]
    data = write_opml(sources)
    assert b"t0k3n" not in data
    root = etree.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.find("head/title").text == "feedlake sources"
    assert email.utils.parsedate_to_datetime(root.find("head/dateCreated").text) is not None
    for outline in root.iter("outline"):
        assert outline.get("text")  # required on every outline by OPML 2.0
    assert [(f.url, f.title, f.folders) for f in read_opml(data)] == [
        ("https://gov.example/rss", "Gov & Co <News>", ("official",)),
        ("https://x.example/feed?token=${FEEDLAKE_VAR_TOKEN}", "Private", ("official",)),
        ("https://blog.example/feed", "A blog", ()),
    ]


@pytest.mark.parametrize(
    "data",
    [
        # UTF-16: the byte scan of the prolog does not see "<!ENTITY".
        (
            '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE opml [<!ENTITY a "x">]>'
            '<opml><body><outline text="&a;" xmlUrl="https://a.org/feed"/></body></opml>'
        ).encode("utf-16"),
        # The declaration after 64 KiB of comment.
        b"<!DOCTYPE opml [<!-- " + b"x" * 70_000 + b' --><!ENTITY a "x">]>'
        b'<opml><body><outline text="&a;" xmlUrl="https://a.org/feed"/></body></opml>',
    ],
)
def test_entity_declarations_are_refused_wherever_they_hide(data: bytes) -> None:
    with pytest.raises(ConfigError, match="declares XML entities"):
        read_opml(data, "hidden.opml")


def test_huge_files_and_lists_are_refused_and_titles_cut() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        read_opml(b"<opml><body>" + b" " * MAX_OPML_BYTES + b"</body></opml>", "big.opml")
    outline = b'<outline text="t" xmlUrl="https://a.org/f"/>'
    with pytest.raises(ConfigError, match=f"more than {MAX_OPML_FEEDS} feeds"):
        read_opml(b"<opml><body>" + outline * (MAX_OPML_FEEDS + 1) + b"</body></opml>", "many.opml")
    long_title = (
        b'<opml><body><outline text="' + b"L" * 10_000 + b'" xmlUrl="https://a.org/f"/></body></opml>'
    )
    assert read_opml(long_title)[0].title == "L" * MAX_TITLE_CHARS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline text='\xe9\xff' xmlUrl='https://a.org/f'/></body></opml>", "well-formed"),
        (b"<?xml version='1.0' encoding='x-bogus'?><opml><body/></opml>", "well-formed"),
        (b"<opml><body>" + b"<x>" * 300 + b"</x>" * 300 + b"</body></opml>", "well-formed"),
        (b"<opml><body>" + b"<outline text='f'>" * 40 + b"</outline>" * 40 + b"</body></opml>", "deeper"),
    ],
)
def test_bad_bytes_and_deep_nesting_are_config_errors(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_opml(data, "hostile.opml")
