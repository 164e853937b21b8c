"""bench/publisher_fidelity.py: the comparison of the lake with feedparser runs and finds losses.

A few corpus feeds whose distinct entries share a guid or a link (issue 18) are polled into a real
lake over real HTTP and compared; the report must count every distinct entry as kept. The comparison
itself must see a loss when a row is missing, or it would prove nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import CORPUS, REPO

FEEDS = [
    "feedjira/cnn.xml",
    "feedjira/apple.xml",
    "RSParser/scriptingNews.rss",
    "RSParser/DaringFireball.json",
]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "publisher_fidelity", REPO / "bench" / "publisher_fidelity.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def fidelity(script: ModuleType, tmp_path_factory: pytest.TempPathFactory):
    return script.compare_corpus(script.corpus_paths(FEEDS), tmp_path_factory.mktemp("fidelity"))


def test_no_distinct_entry_of_the_named_feeds_is_lost(fidelity) -> None:
    assert fidelity.lost == 0
    by_path = {f.path: f for f in fidelity.feeds}
    for path in FEEDS[:3]:
        feed = by_path[path]
        assert feed.status == "ok" and feed.compared
        assert feed.distinct == feed.rows > 0, path
    # feedparser reads no JSON Feed: that feed is polled but not compared.
    assert (
        not by_path["RSParser/DaringFireball.json"].compared and by_path["RSParser/DaringFireball.json"].rows
    )


def test_fields_are_compared_and_only_documented_differences_agree(script: ModuleType, fidelity) -> None:
    for name in script.FIELDS:
        counts = fidelity.outcomes(name)
        assert sum(counts.values()) > 0
        assert set(counts) <= {
            script.SAME,
            script.LOST,
            script.DIFFERS,
            script.LAKE_ONLY,
            *script.NORMALIZATIONS[name],
        }
    # feedburner links in cnn.xml are kept as given; scripting.com links lose their #fragment.
    assert fidelity.outcomes("link")["canonical URL"] >= 1


def test_the_report_says_what_was_compared(script: ModuleType, fidelity) -> None:
    report = script.render_markdown(fidelity, "python bench/publisher_fidelity.py --feeds ...")
    assert "**Distinct entries lost: 0.**" in report
    for path in FEEDS:
        assert f"| {path} |" in report
    for reasons in script.NORMALIZATIONS.values():
        for key in reasons:
            assert f": {key}**" in report
    table = script.render_table(fidelity)
    assert "lost 0" in table and "LOST" not in table


def test_a_missing_row_is_counted_as_lost(script: ModuleType) -> None:
    body = (CORPUS / "feedjira" / "apple.xml").read_bytes()
    url = "http://feeds.example.test/apple.xml"
    whole = script.FeedComparison("apple.xml", "apple")
    rows = rows_of(script, body, url)
    script._compare_feed(whole, body, {"content-type": "application/xml"}, url, rows)
    assert whole.lost == 0 and whole.distinct == len(rows)
    short = script.FeedComparison("apple.xml", "apple")
    script._compare_feed(short, body, {"content-type": "application/xml"}, url, rows[1:])
    assert short.lost == 1 and short.lost_titles == [rows[0]["title"]]


def rows_of(script: ModuleType, body: bytes, url: str) -> list[dict[str, object]]:
    """The rows a poll would store for ``body``, in document order, as the script reads them back."""
    from datetime import UTC, datetime

    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    fetched = FetchResult("apple", url, datetime(2026, 1, 1, tzinfo=UTC), status=200, body=body)
    batch = normalize_feed(parse_feed(fetched), Source("apple", url, "a", "p", "news"), "r")
    return [{**row, "held": False} for row in batch.to_pylist()]


def test_feed_selection_by_prefix(script: ModuleType) -> None:
    chosen = script.corpus_paths(["feedjira/apple", "RSParser/scripting"])
    assert chosen == ["RSParser/scriptingNews.rss", "feedjira/apple.xml"]
    with pytest.raises(SystemExit):
        script.corpus_paths(["no/such/feed"])
    assert Path(CORPUS / chosen[0]).is_file()
