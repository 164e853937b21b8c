"""WebSub push: a local hub subscribes `feedlake websub serve`, pushes a signed update and a forged one.

The feed is the real Economist Asia page (tests/cases/corpus) with a hub link; the endpoint runs
as its own process against the session's Prefect API and ingests pushes through the poll's stages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feedlake.tasks.demo.snapshot_server import serve_snapshots
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.websub.subscriber import signature_valid
from tests.conftest import free_port, write_sources
from tests.support.archive_server import SOURCE_FEED, document, split_feed
from tests.support.prefect_server import feedlake_env, running, wait_for
from tests.support.websub_hub import serve_hub

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_signatures_are_checked_with_every_hub_algorithm() -> None:
    import hashlib
    import hmac

    body = b"<rss/>"
    for name in ("sha1", "sha256", "sha512"):
        good = hmac.new(b"k", body, getattr(hashlib, name)).hexdigest()
        assert signature_valid(b"k", body, f"{name}={good}")
        assert not signature_valid(b"other", body, f"{name}={good}")
    assert not signature_valid(b"k", body, None) and not signature_valid(b"k", body, "md5=00")


def rows(lake: Path) -> list[str]:
    # Read through the commit log, as readers must: the lake is polled while a run is writing, and
    # a directory scan would see partition folders whose files are not linked yet.
    files = live_files(open_store(str(lake)), "articles") if lake.exists() else []
    return [
        guid
        for f in files
        for guid in pq.read_table(lake / f.key, columns=["guid"]).column("guid").to_pylist()
    ]


def test_signed_push_is_ingested_forged_push_is_ignored_and_the_lease_renews(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    head, items, tail = split_feed(SOURCE_FEED.read_text(encoding="utf-8"))
    page = items[:50]
    new_item = page[0].replace("</guid>", "-pushed</guid>", 1)
    forged_item = page[0].replace("</guid>", "-forged</guid>", 1)
    later_item = page[0].replace("</guid>", "-later</guid>", 1)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    with serve_hub() as (hub_url, hub), serve_snapshots(feeds) as base:
        topic = f"{base}/feed.xml"
        links = {"hub": hub_url, "self": topic}
        (feeds / "feed.xml").write_bytes(document(head, page, tail, links))
        sources = write_sources(tmp_path / "s.yaml", [("economist", topic)])
        lake = tmp_path / "lake"
        port = free_port()
        env = feedlake_env(str(PREFECT_API_URL.value()), tmp_path)
        command = [
            sys.executable,
            "-m",
            "feedlake.flows.cli",
            "websub",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
        ]
        command += ["--public-url", f"http://127.0.0.1:{port}/websub", "--sources", str(sources)]
        command += ["--lake", str(lake), "--lease-seconds", "6"]
        with running(command, env, tmp_path / "websub.log", 30) as endpoint:
            wait_for(lambda: hub.verified, 90, "the subscription to be verified")
            assert hub.verified[0].topic == topic and hub.verified[0].callback.endswith("/websub/economist")
            assert hub.push(topic, document(head, [new_item, *page], tail, links)) == 202
            wait_for(lambda: len(rows(lake)) == 51, 120, "the pushed document to be committed")
            assert sum(g.endswith("-pushed") for g in rows(lake)) == 1
            assert hub.push(topic, document(head, [forged_item, *page], tail, links), forged=True) == 202
            # A signed push sent after the forged one: once it is in, the forged one had its turn.
            later = document(head, [later_item, new_item, *page], tail, links)
            assert hub.push(topic, later) == 202
            wait_for(lambda: any(g.endswith("-later") for g in rows(lake)), 120, "the later signed push")
            assert len(rows(lake)) == 52 and not any(g.endswith("-forged") for g in rows(lake))
            wait_for(lambda: len(hub.verified) >= 2, 30, "the lease to be renewed")
            assert hub.refused == []
    assert endpoint.returncode == 0, (tmp_path / "websub.log").read_text()[-3000:]
