"""`feedlake serve` as an operator runs it: polls on schedule with no Prefect server configured,
stops promptly on SIGTERM, and resumes within one interval after a SIGKILL of itself and its poll.

A local site publishes an item every few seconds; the lake must hold every item that the polls
saw, exactly once.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.settings import FeedlakeSettings
from tests.support.prefect_server import wait_for
from tests.support.publishing_site import PublishingSite, publishing_site
from tests.support.shell_env import shell_without_prefect

pytestmark = pytest.mark.slow

INTERVAL = 20
FEEDLAKE = str(Path(sys.executable).with_name("feedlake"))


def serve_env(root: Path, prefect_api_url: str | None = None) -> dict[str, str]:
    """An operator's shell: feedlake's home in ``root``, and a Prefect server only if one is given."""
    env = shell_without_prefect(root, FEEDLAKE_HOME=str(root / "feedlake-home"), FEEDLAKE_SERVE_PORT="0")
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def write_sources(path: Path, site: PublishingSite) -> Path:
    path.write_text(
        "sources:\n"
        "  - id: test-site\n"
        f'    url: "{site.base_url}/feed.xml"\n'
        "    name: Test site\n"
        "    publisher: test\n"
        "    kind: news\n"
        f"    poll_interval: {INTERVAL}s\n",
        encoding="utf-8",
    )
    return path


def lake_guids(lake: Path) -> list[str]:
    """Every guid in the lake's live article files (the reader contract)."""
    if not lake.exists():
        return []
    store = open_store(str(lake), FeedlakeSettings())
    guids: list[str] = []
    for committed in live_files(store, "articles"):
        table = pq.read_table(io.BytesIO(store.get(committed.key) or b""), columns=["guid"])
        guids += table.column("guid").to_pylist()
    return guids


@contextmanager
def serving(
    root: Path, sources: Path, lake: Path, log: Path, prefect_api_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`feedlake serve --sources F --lake L`, in its own process group (so a test can kill it whole)."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [FEEDLAKE, "serve", "--sources", str(sources), "--lake", str(lake)],
            env=serve_env(root, prefect_api_url),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def assert_lake_holds_a_prefix_once(lake: Path, site: PublishingSite, at_least: int) -> None:
    guids = lake_guids(lake)
    assert len(guids) == len(set(guids)), "an item landed twice"
    landed = len(guids)
    assert set(guids) == set(site.published_guids(landed)), "the lake is not the items published, in order"
    assert landed >= at_least, f"{landed} items landed, expected at least {at_least}"


def test_serve_polls_on_schedule_without_a_prefect_server(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = tmp_path / "serve.log"
    with publishing_site(every_seconds=6) as site:
        sources = write_sources(tmp_path / "sources.yaml", site)
        with serving(tmp_path, sources, lake, log) as serve:
            wait_for(lambda: len(site.served) >= 3 or serve.poll() is not None, 240, "three scheduled polls")
            assert serve.poll() is None, log.read_text()[-3000:]
            third = site.served[2]
            wait_for(lambda: len(lake_guids(lake)) >= third, 60, "the third poll's items")
            started = time.monotonic()
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
            stopped_in = time.monotonic() - started
    output = log.read_text()
    assert serve.returncode == 0, output[-3000:]
    assert stopped_in < 20, f"SIGTERM took {stopped_in:.1f} s"
    gaps = [b - a for a, b in zip(site.request_times, site.request_times[1:], strict=False)]
    assert all(gap < 2 * INTERVAL for gap in gaps[:2]), f"polls were not on schedule: gaps {gaps}"
    assert_lake_holds_a_prefix_once(lake, site, third)
    assert "Traceback" not in output and "ERROR" not in output, output[-3000:]
    assert "feedlake serve: stopped" in output
    assert not list(lake.glob("_txn/*")), "a stopped serve left a run in flight"


def test_serve_resumes_within_one_interval_after_sigkill_mid_poll(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = tmp_path / "serve.log"
    with publishing_site(every_seconds=4) as site:
        sources = write_sources(tmp_path / "sources.yaml", site)
        with serving(tmp_path, sources, lake, log) as first:
            wait_for(lambda: lake_guids(lake) or first.poll() is not None, 240, "the first poll's items")
            assert first.poll() is None, log.read_text()[-3000:]
            site.hold_seconds = 60.0  # the next poll hangs on the feed: it is in flight when killed
            wait_for(site.held.is_set, 3 * INTERVAL, "a poll in flight")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        site.hold_seconds = 0.0
        polls_before = len(site.served)
        restarted = time.monotonic()
        with serving(tmp_path, sources, lake, log) as second:
            wait_for(lambda: len(site.served) > polls_before, 120, "a poll after the restart")
            resumed_in = time.monotonic() - restarted
            after = site.served[-1]
            wait_for(lambda: len(lake_guids(lake)) >= after, 60, "the resumed poll's items")
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    output = log.read_text()
    # Start-up (server and first flow-run process) plus one interval, with slack for a loaded
    # machine; a slot held until Prefect's lease expires would take 300 s.
    assert resumed_in < 150, f"the restarted serve polled only after {resumed_in:.0f} s\n{output[-3000:]}"
    assert "marked 1 runs of a previous serve as crashed" in output, output[-3000:]
    assert_lake_holds_a_prefix_once(lake, site, after)
