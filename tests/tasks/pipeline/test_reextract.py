"""pipeline.reextract: a better extractor improves the history from the raw capture, without fetching."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

import feedlake
import feedlake.tasks.full_text.extract
from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.full_text.extract import ExtractionJob, PageArticle, extract_article
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.pipeline.reextract import run_reextract
from feedlake.tasks.settings import FeedlakeSettings
from tests.support.crash_store import Killed


def first_paragraph_only(job: ExtractionJob) -> PageArticle:
    """Last year's extractor: it lost the second half of each body."""
    found = extract_article(job)
    return found if found.text is None else replace(found, text=found.text[: len(found.text) // 2] + " [cut]")


def latest_bodies(lake: Path) -> dict[str, tuple[str, str]]:
    """article_id -> (content_source, content_text) of the latest version of each article."""
    table = ds.dataset(lake / "articles", partitioning="hive", schema=ARTICLE_SCHEMA).to_table()
    latest: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        held = latest.get(row["article_id"])
        if held is None or (row["captured_at"], row["fetched_at"], row["run_id"]) > (
            held["captured_at"],
            held["fetched_at"],
            held["run_id"],
        ):
            latest[row["article_id"]] = row
    return {k: (str(v["content_source"]), str(v["content_text"])) for k, v in latest.items()}


@pytest.fixture
def lake_of_last_year(
    af_mil: tuple[Path, FeedlakeSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, FeedlakeSettings]:
    sources, settings = af_mil
    lake = tmp_path / "lake"
    with monkeypatch.context() as patch:
        # One extraction process is a thread of this one, where the patch holds.
        patch.setattr(feedlake.tasks.full_text.extract, "extract_article", first_paragraph_only)
        feedlake.poll(sources, lake, settings.model_copy(update={"extract_processes": 1}))
    return lake, settings.model_copy(update={"lake": str(lake), "connect_to": ""})


def test_reextract_rewrites_the_bodies_a_better_extractor_finds(
    lake_of_last_year: tuple[Path, FeedlakeSettings],
) -> None:
    lake, settings = lake_of_last_year
    before = latest_bodies(lake)
    cut = {k for k, (source, text) in before.items() if source == "page"}
    assert len(cut) == 4 and all(before[k][1].endswith("[cut]") for k in cut)
    done = run_reextract(settings)
    assert (done.pages, done.changed, done.unchanged, done.without_row) == (4, 4, 0, 0)
    after = latest_bodies(lake)
    for key in cut:
        assert after[key][0] == "page"
        assert not after[key][1].endswith("[cut]") and len(after[key][1]) > 1.9 * len(before[key][1]) - 20
    assert {k: v for k, v in after.items() if k not in cut} == {
        k: v for k, v in before.items() if k not in cut
    }
    again = run_reextract(settings)
    assert (again.changed, again.unchanged) == (0, 4), "re-extraction is idempotent"


def test_reextract_filters_by_source(lake_of_last_year: tuple[Path, FeedlakeSettings]) -> None:
    lake, settings = lake_of_last_year
    assert run_reextract(settings, source_id="someone-else").pages == 0
    assert run_reextract(settings, source_id="af-mil-news").changed == 4


def test_a_crash_at_any_write_of_a_reextract_leaves_one_new_version(
    lake_of_last_year: tuple[Path, FeedlakeSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedlake.tasks.pipeline.reextract as reextract
    from tests.support.crash_store import CrashingStore

    lake, settings = lake_of_last_year
    real_open = reextract.open_store
    monkeypatch.setattr(
        reextract, "open_store", lambda url, s=None: CrashingStore(real_open(url, s), crash_at=3)
    )
    with pytest.raises(Killed):
        run_reextract(settings)
    monkeypatch.setattr(reextract, "open_store", real_open)
    open_store(str(lake)).delete("_lease.json")  # the killed run's lease, as its expiry would
    run_reextract(settings)
    table = ds.dataset(lake / "articles", partitioning="hive", schema=ARTICLE_SCHEMA).to_table()
    versions = [r for r in table.to_pylist() if r["content_source"] == "page"]
    assert len(versions) == 8, "each of the 4 articles: last year's version and exactly one new one"
    assert (
        sum(
            1 for _, (source, text) in latest_bodies(lake).items() if source == "page" and "[cut]" not in text
        )
        == 4
    )
