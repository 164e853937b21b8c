"""Write tests/cases/legacy_lake/lake with the real releases before Delta tables (see README.md).

Run each phase with that release's code first on the path (not the working tree), and /work/main's
virtualenv (it has every dependency of both):

    git worktree add /tmp/feedlake-older f6dfa9a    # article schema v1, the _commits/ layout
    git worktree add /tmp/feedlake-old 449e9d4      # the last release before Delta (schema v2)
    for r in older old; do mkdir -p /tmp/pkg-$r/feedlake
      ln -s /tmp/feedlake-$r/api/* /tmp/pkg-$r/feedlake/
      ln -s /tmp/feedlake-$r/{tasks,flows,schemas} /tmp/pkg-$r/feedlake/; done
    export GX_ANALYTICS_ENABLED=false FEEDLAKE_ALLOW_PRIVATE_NETWORKS=true FEEDLAKE_PER_HOST_MIN_GAP_SECONDS=0
    PYTHONPATH=/tmp/pkg-older .venv/bin/python tests/cases/legacy_lake/make_legacy_lake.py \
        first tests/cases/corpus /tmp/legacy-work <port>
    PYTHONPATH=/tmp/pkg-old .venv/bin/python tests/cases/legacy_lake/make_legacy_lake.py \
        rest tests/cases/corpus /tmp/legacy-work <port>
    cp -a /tmp/legacy-work/lake tests/cases/legacy_lake/lake
    rm tests/cases/legacy_lake/lake/.feedlake.lock
    git worktree remove --force /tmp/feedlake-old; git worktree remove --force /tmp/feedlake-older

"first" copies the four feeds to <work dir>/served and polls them once (schema v1 rows); "rest"
edits two feeds, polls again (a new version of one item, one row quarantined), compacts (a record
with ``removed``), then polls once more and dies at that run's commit record (a data file, an
intent and reports that no record names). Both phases serve the feeds on the same <port>.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from feedlake.tasks.demo.snapshot_server import serve_snapshots
from feedlake.tasks.lake.compact import compact_lake
from feedlake.tasks.lake.layout import new_run_id
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.pipeline.poll import run_poll
from feedlake.tasks.settings import FeedlakeSettings

FEEDS = {
    "afmil-commentaries": "af.mil-mirror_TecnologiaNova/RSS1e7a.ashx.xml",
    "afmil-news": "af.mil-mirror_TecnologiaNova/RSS216d.ashx.xml",
    "xkcd": "feedjira/xkcd.xml",
    "influxdata": "feed-rs/jsonfeed_elastic_1.1.json",
}

# An item published in 1985: the suite's published_at expectation (1990 on) rejects it.
OLD_ITEM = """<item>
<title>A commentary from 1985</title>
<link>http://www.af.mil/News/Commentaries/Display/tabid/271/Article/1985/a-commentary-from-1985.aspx</link>
<description>Held in quarantine: published before 1990.</description>
<pubDate>Mon, 06 May 1985 10:00:00 GMT</pubDate>
<guid isPermaLink="false">http://www.af.mil/News/Commentaries/1985</guid>
</item>
"""

NEW_ITEM = """<item>
<title>A news item of the crashed run</title>
<link>http://www.af.mil/News/Display/tabid/223/Article/999999/crashed-run.aspx</link>
<description>Written by a run killed before its commit record.</description>
<pubDate>Tue, 12 Jan 2016 10:00:00 GMT</pubDate>
<guid isPermaLink="false">http://www.af.mil/News/999999</guid>
</item>
"""


class Killed(BaseException):
    """The process dies here."""


class DiesAtCommitRecord:
    """A store that dies when a run writes its commit record (the old commit point)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key.startswith("_commits/"):
            raise Killed(key)
        return self.inner.put_if_absent(key, data)  # type: ignore[attr-defined]


def insert_item(path: Path, item: str) -> None:
    text = path.read_text(encoding="utf-8")
    at = text.index("<item>")
    path.write_text(text[:at] + item + text[at:], encoding="utf-8")


def main() -> None:
    phase, corpus, work, port = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    served = work / "served"
    if phase == "first":
        for relative in FEEDS.values():
            (served / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus / relative, served / relative)
    lake = work / "lake"
    with serve_snapshots(served, port=port) as base_url:
        lines = ["sources:"]
        for source_id, relative in FEEDS.items():
            lines += [
                f"  - id: {source_id}",
                f'    url: "{base_url}/{relative}"',
                f"    name: {source_id}",
                "    publisher: test",
                "    kind: news",
            ]
            if phase != "first":  # the release before full text has no full_text field
                lines.append("    full_text: never")
        sources = work / "sources.yaml"
        sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
        settings = FeedlakeSettings(lake=str(lake), sources=str(sources))
        if phase == "first":
            print("poll 1:", run_poll(settings).rows_committed, "rows")
            return
        # The publisher edits a title (a new version in the same partition) and adds an old item.
        xkcd = served / FEEDS["xkcd"]
        xkcd.write_text(xkcd.read_text().replace("<title>Oort Cloud</title>", "<title>Oort Cloud (edited)</title>"))
        insert_item(served / FEEDS["afmil-commentaries"], OLD_ITEM)
        print("poll 2:", run_poll(settings).rows_committed, "rows")
        store = open_store(str(lake))
        run_id = new_run_id()
        with lake_transaction(store, run_id, settings.lease_seconds):
            done = compact_lake(store, run_id, target_bytes=64 * 1024 * 1024, row_group_rows=65536)
        print("compaction:", [(d.partition, d.files_before, d.files_after) for d in done])
        # A third poll dies at its commit point: its data file and intent stay, named by no record.
        insert_item(served / FEEDS["afmil-news"], NEW_ITEM)
        try:
            run_poll(settings, store=DiesAtCommitRecord(store))  # type: ignore[arg-type]
        except Killed as killed:
            print("poll 3 killed at", killed)


if __name__ == "__main__":
    main()
