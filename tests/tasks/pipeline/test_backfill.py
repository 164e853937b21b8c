"""pipeline.backfill: a backfill of a teaser feed honours full_text, like a poll."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.dataset as ds

import feedlake
from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.lake.raw_capture import iter_raw_captures
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.settings import FeedlakeSettings
from tests.support.paths import CASES
from tests.tasks.pipeline.conftest import FEED


def test_a_backfill_gets_the_pages_of_its_teaser_items_once(
    af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path
) -> None:
    sources, settings = af_mil
    folder = tmp_path / "captures"
    folder.mkdir()
    shutil.copy(CASES / FEED, folder / "news.xml")
    lake = tmp_path / "lake"
    first = feedlake.backfill(
        sources, lake, "af-mil-news", strategy="files", path=folder, workers=1, settings=settings
    )
    assert first.rows_written == 20
    rows = ds.dataset(lake / "articles", partitioning="hive", schema=ARTICLE_SCHEMA).to_table().to_pylist()
    assert sum(r["content_source"] == "page" for r in rows) == 4
    assert {r["page_status"] for r in rows if r["content_source"] != "page"} == {"http_404"}
    captured = list(iter_raw_captures(open_store(str(lake)), kind="page"))
    assert len(captured) == 20
    again = feedlake.backfill(
        sources, lake, "af-mil-news", strategy="files", path=folder, workers=1, settings=settings
    )
    # Nothing new: no page is fetched again, so no second capture.
    assert (again.rows_written, again.duplicates) == (0, 20)
    assert len(list(iter_raw_captures(open_store(str(lake)), kind="page"))) == 20
