"""`feedlake serve` against a real `prefect server start` (PREFECT_API_URL set), through a restart of
that server: scheduled polls go on, no run crashes, and serve prints no traceback.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.flows.test_serve_unattended import (
    INTERVAL,
    assert_lake_holds_a_prefix_once,
    lake_guids,
    serving,
    write_sources,
)
from tests.support.prefect_server import api_post, prefect_server, wait_for
from tests.support.publishing_site import publishing_site

pytestmark = pytest.mark.slow


def poll_runs(api: str) -> list[dict]:
    """Every run of the feedlake-poll flow, newest first."""
    flows = httpx.post(f"{api}/flows/filter", json={"flows": {"name": {"any_": ["feedlake-poll"]}}}).json()
    body = {"flows": {"id": {"any_": [f["id"] for f in flows]}}, "limit": 200, "offset": 0, "sort": "ID_DESC"}
    return list(api_post(api, "/flow_runs/filter", body))


def test_serve_rides_out_a_prefect_server_restart(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    log = tmp_path / "serve.log"
    home = tmp_path / "server"
    home.mkdir()
    port = free_port()
    with publishing_site(every_seconds=5) as site:
        sources = write_sources(tmp_path / "sources.yaml", site)
        first_server = prefect_server(home, port)
        api = first_server.__enter__()
        try:
            with serving(tmp_path, sources, lake, log, prefect_api_url=api) as serve:
                wait_for(lambda: lake_guids(lake) or serve.poll() is not None, 240, "the first poll")
                assert serve.poll() is None, log.read_text()[-3000:]
                # Stop the server (SIGTERM, as a restart does) and bring it back on the same database.
                first_server.__exit__(None, None, None)
                first_server = None
                polls_before = len(site.served)
                # Down for longer than one interval: a run falls due while the API is gone.
                time.sleep(INTERVAL + 5)
                with prefect_server(home, port):
                    back_at = time.monotonic()
                    wait_for(lambda: len(site.served) >= polls_before + 2, 180, "two polls after the restart")
                    # The run that fell due during the outage runs once the API is back, not a tick later.
                    first_after = site.request_times[polls_before] - back_at
                    assert first_after < INTERVAL + 30, f"first poll {first_after:.0f} s after the restart"
                    wait_for(lambda: len(lake_guids(lake)) >= site.served[-1], 60, "their items")
                    runs = poll_runs(api)
                    serve.send_signal(signal.SIGTERM)
                    serve.wait(timeout=30)
        finally:
            if first_server is not None:
                first_server.__exit__(None, None, None)
    output = log.read_text()
    bad = [(r["name"], r["state_type"]) for r in runs if r["state_type"] in ("CRASHED", "FAILED")]
    assert not bad, f"runs failed across the restart: {bad}\n{output[-3000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert_lake_holds_a_prefix_once(lake, site, site.served[-1])
