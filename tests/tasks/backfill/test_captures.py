"""Backfill strategies against a local server built from a real feed: every document, in order, once."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from feedlake.tasks.backfill.captures import (
    archive_captures,
    choose_strategy,
    entry_fingerprint,
    file_captures,
    http_fetcher,
    paged_captures,
    wayback_captures,
)
from feedlake.tasks.parse.feed_links import feed_links
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import Source
from tests.support.archive_server import ORIGINAL_URL, ArchiveSite, serve_archive_site


@pytest.fixture(scope="module")
def site():
    with serve_archive_site() as served:
        yield served


def fetcher(url: str):
    settings = FeedlakeSettings(per_host_min_gap_seconds=0)
    return http_fetcher(settings, Source("economist", url, "economist", "test", "news"))


def test_feed_links_reads_atom_links_of_the_header_only() -> None:
    body = ArchiveSite().routes["/archive/feed.xml"]
    links = feed_links(body, "http://h.test/archive/feed.xml")
    assert links["prev-archive"] == "http://h.test/archive/page-1.xml"
    assert links["self"] == "https://www.economist.com/asia/rss.xml"
    assert feed_links(
        b'{"version": "https://jsonfeed.org/version/1.1", "next_url": "p2.json"}', "http://h.test/a/f.json"
    ) == {"next": "http://h.test/a/p2.json"}


def test_archive_chain_yields_each_page_with_its_resume_cursor(site) -> None:
    base, served = site
    captures = list(archive_captures(fetcher(base), f"{base}/archive/feed.xml"))
    assert [c.url.removeprefix(base) for c in captures] == ["/archive/feed.xml"] + [
        f"/archive/page-{n}.xml" for n in range(1, 6)
    ]
    assert [c.cursor for c in captures[:-1]] == [c.url for c in captures[1:]] and captures[-1].cursor is None
    assert {c.capture_source for c in captures} == {"archive"}
    assert sum(len(entry_fingerprint(c.body)) for c in captures) >= 300
    resumed = list(archive_captures(fetcher(base), f"{base}/archive/feed.xml", cursor=captures[3].cursor))
    assert [c.url for c in resumed] == [c.url for c in captures[4:]]


def test_paged_feed_follows_next_links(site) -> None:
    base, _ = site
    captures = list(paged_captures(fetcher(base), f"{base}/paged/feed.xml"))
    assert len(captures) == 6 and captures[-1].url.endswith("?page=6")


@pytest.mark.parametrize("route", ["/wp/feed/", "/wp-path/feed/", "/wp-repeat/feed/"])
def test_wordpress_paging_stops_at_a_missing_or_repeated_page(site, route: str) -> None:
    base, _ = site
    captures = list(paged_captures(fetcher(base), f"{base}{route}"))
    assert len(captures) == 6, [c.url for c in captures]
    assert captures[-1].cursor == f"wordpress:{'path' if 'path' in route else 'query'}:7"
    resumed = list(paged_captures(fetcher(base), f"{base}{route}", cursor=captures[2].cursor))
    assert [c.url for c in resumed] == [c.url for c in captures[3:]]


def test_auto_picks_archive_then_paged_then_wordpress_then_wayback(site, tmp_path: Path) -> None:
    base, _ = site
    assert choose_strategy(fetcher(base), f"{base}/archive/feed.xml", None)[0] == "archive"
    assert choose_strategy(fetcher(base), f"{base}/paged/feed.xml", None)[0] == "paged"
    assert choose_strategy(fetcher(base), f"{base}/wp/feed/", None)[0] == "paged"
    assert choose_strategy(fetcher(base), f"{base}/plain/feed.xml", None)[0] == "wayback"
    assert choose_strategy(fetcher(base), f"{base}/plain/feed.xml", tmp_path)[0] == "files"


def test_wayback_lists_captures_by_cdx_and_fetches_them_raw(site) -> None:
    base, served = site
    total, captures = wayback_captures(fetcher(base), f"{base}/wb", ORIGINAL_URL)
    found = list(captures)
    assert total == len(found) == 8
    assert {c.url for c in found} == {ORIGINAL_URL} and {c.capture_source for c in found} == {"wayback"}
    assert found[-1].captured_at == datetime(2026, 2, 18, tzinfo=UTC)
    assert found[-1].body == served.snapshots["20260218000000"]
    window, _ = wayback_captures(
        fetcher(base), f"{base}/wb", ORIGINAL_URL, since=date(2025, 6, 1), until=date(2025, 12, 31)
    )
    assert window == 4


def test_files_reads_a_folder_of_documents_and_warc_records(tmp_path: Path) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    site = ArchiveSite()
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "a.xml").write_bytes(site.routes["/archive/page-1.xml"])
    with (folder / "crawl.warc.gz").open("wb") as stream:
        writer = WARCWriter(stream, gzip=True)
        bodies = [site.snapshots[s] for s in sorted(site.snapshots)[:2]]
        for stamp, body in zip(("20250101000000", "20250301000000"), bodies, strict=True):
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "application/rss+xml")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(
                ORIGINAL_URL,
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=headers,
                warc_headers_dict={"WARC-Date": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T00:00:00Z"},
            )
            writer.write_record(record)
    total, captures = file_captures(folder, ORIGINAL_URL)
    found = list(captures)
    assert total == 2 and len(found) == 3
    assert found[0].key == "file:a.xml" and found[0].capture_source == "file"
    warc = found[1:]
    assert [c.captured_at.date() for c in warc] == [date(2025, 1, 1), date(2025, 3, 1)]
    assert all(c.url == ORIGINAL_URL and c.key.startswith("file:crawl.warc.gz#") for c in warc)
    assert warc[0].body == bodies[0]
