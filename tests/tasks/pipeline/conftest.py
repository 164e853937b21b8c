"""The af.mil teaser feed and four of its items' real pages, served over local HTTP (as the demo does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from feedlake.tasks.demo.snapshot_server import bundled_pages, serve_snapshots
from feedlake.tasks.settings import FeedlakeSettings
from tests.conftest import write_sources
from tests.support.paths import CASES

FEED = "corpus/af.mil-mirror_TecnologiaNova/RSS3a26.ashx.xml"


@pytest.fixture
def af_mil(tmp_path: Path) -> Iterator[tuple[Path, FeedlakeSettings]]:
    """A sources file with the af.mil news feed (full_text: auto) and settings reaching its pages."""
    hosts = bundled_pages(CASES / "pages" / "af.mil" / "LINKS.tsv")
    pages = {target: path for by_path in hosts.values() for target, path in by_path.items()}
    with serve_snapshots(CASES, pages=pages) as base_url:
        sources = write_sources(tmp_path / "sources.yaml", [("af-mil-news", f"{base_url}/{FEED}")], "auto")
        address = base_url.removeprefix("http://")
        settings = FeedlakeSettings(
            connect_to=",".join(f"{host}:80={address}" for host in hosts),
            allow_private_networks=True,
            per_host_min_gap_seconds=0,
            extract_processes=2,
        )
        yield sources, settings
