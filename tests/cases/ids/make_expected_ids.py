"""Write the article ids a feedlake release made from corpus feeds (tests/cases/ids/corpus_article_ids.tsv).

Run against the release whose ids must not change, its code first on the path (not the working tree):

    mkdir -p /tmp/feedlake-old/src /tmp/feedlake-old/pkg
    git archive <commit> api tasks schemas flows | tar -x -C /tmp/feedlake-old/src
    cp -r /tmp/feedlake-old/src/api /tmp/feedlake-old/pkg/feedlake
    cp -r /tmp/feedlake-old/src/{tasks,schemas,flows} /tmp/feedlake-old/pkg/feedlake/
    PYTHONPATH=/tmp/feedlake-old/pkg .venv/bin/python tests/cases/ids/make_expected_ids.py <commit> \\
        > tests/cases/ids/corpus_article_ids.tsv

Each feed is parsed as a poll of ``http://feeds.example.test/<path>`` with no response headers would
parse it (source id ``corpus``), by both readers (the lxml fast path and feedparser alone), which must
agree. An entry whose id repeats an earlier entry's of its document is left out: that release
collapsed it into the earlier one, so it has no id of its own to keep.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SOURCE_ID = "corpus"
# Every entry of the feeds whose guids are relative (their ids depend on how a guid is resolved), and
# of one that lists an id twice.
ALL_ENTRIES = (
    "RSParser/livemint.xml",
    "feed-rs/atom_mediarss_reddit_1.xml",
    "rss-parser/reddit-home.rss",
    "feedjira/apple.xml",
)
# The first entries of others: each reader (fast path, feedparser strict and loose), xml:base, RDF,
# JSON Feed, a document that repeats an id, legacy encodings, one feed of each corpus folder.
FIRST_ENTRIES = (
    "FeedVerse/un-news-europe.rss.xml",
    "RSParser/DaringFireball.atom",
    "af.mil-mirror_TecnologiaNova/RSS1e7a.ashx.xml",
    "fastfeedparser/d4b7ab74da763119.humanwhocodes-jsonfeed.json",
    "fastfeedparser/e44e7aea7e34bb52.kottke.atom",
    "fastfeedparser/kagi.xml",
    "feed-rs/rss_2.0_relurl_1.xml",
    "feedjira/FeedBurnerXHTML.xml",
    "feedjira/HREFConsideredHarmful.xml",
    "feedjira/SamRuby.xml",
    "feedjira/Slashdot.xml",
    "feedjira/json_feed_with_escaped_uris.json",
    "feedjira/white_house.xml",
    "gofeed/twit.xml",
    "miniflux-v2/encoding_ISO-8859-1.xml",
    "rss-parser/rss-1.rss",
)
FIRST = 10


def article_ids(path: str, fast_path: bool) -> list[str]:
    """The article ids of one corpus feed's entries, in document order."""
    url = f"http://feeds.example.test/{path}"
    fetched = FetchResult(
        SOURCE_ID, url, datetime(2026, 1, 1, tzinfo=UTC), status=200, body=(CORPUS / path).read_bytes()
    )
    batch = normalize_feed(
        parse_feed(fetched, fast_path), Source(SOURCE_ID, url, SOURCE_ID, "t", "news"), "r"
    )
    return [str(value) for value in batch.column("article_id").to_pylist()]


def main(commit: str) -> None:
    """Print the TSV: a header line saying how it was made, then path, entry index, article id."""
    print(f"# article ids made by feedlake {commit}: tests/cases/ids/make_expected_ids.py, see its docstring")
    print("path\tentry\tarticle_id")
    for path in ALL_ENTRIES + FIRST_ENTRIES:
        ids = article_ids(path, fast_path=True)
        if ids != article_ids(path, fast_path=False):
            raise SystemExit(f"{path}: the two readers disagree, no reference to keep")
        seen: set[str] = set()
        for index, article_id in enumerate(ids):
            if path in FIRST_ENTRIES and index >= FIRST:
                break
            if article_id not in seen:
                print(f"{path}\t{index}\t{article_id}")
            seen.add(article_id)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "(unnamed)")
