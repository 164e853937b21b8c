"""Scale-out: deployments on a process work pool, two `prefect worker` processes pulling the runs.

A real `prefect server start` (SQLite here; Postgres in infra/docker-compose.yml), `feedlake deploy`,
two workers with one run at a time each. The server's scheduler creates the 20-second group's polls
and a worker picks them up; two on-demand runs of the other groups arrive at once, so both workers
work. No run fails, and the lake holds every article exactly once.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.conftest import free_port
from tests.support.prefect_server import ROOT, api_post, feedlake_env, prefect_server, running, wait_for

pytestmark = pytest.mark.slow


def test_two_workers_share_the_runs_and_write_each_article_once(
    tmp_path_factory: pytest.TempPathFactory, snapshot_base_url: str
) -> None:
    root = tmp_path_factory.mktemp("scale-out")
    lake = root / "lake"
    sources = sources_file(root / "s.yaml", snapshot_base_url)
    scheduled = "poll-every-20s"
    with prefect_server(root, free_port()) as api:
        env = feedlake_env(api, root, PREFECT_WORKER_QUERY_SECONDS="1")
        api_post(api, "/work_pools/", {"name": "feedlake-test", "type": "process"})
        deploy = [sys.executable, "-m", "feedlake.flows.cli", "deploy", "--pool", "feedlake-test"]
        subprocess.run(
            [*deploy, "--sources", str(sources), "--lake", str(lake)], cwd=ROOT, env=env, check=True
        )
        worker = [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            "feedlake-test",
            "--limit",
            "1",
        ]
        with contextlib.ExitStack() as workers:
            for n in range(2):
                workers.enter_context(
                    running([*worker, "--name", f"worker-{n}"], env, root / f"worker-{n}.log", 30)
                )
            ids = []
            deployments = {}
            for name in (scheduled, "poll-every-1h", "poll-every-1d"):
                deployments[name] = api_post(
                    api,
                    "/deployments/filter",
                    {"deployments": {"name": {"any_": [name]}}, "limit": 1, "offset": 0},
                )[0]["id"]
            for name in ("poll-every-1h", "poll-every-1d"):
                ids.append(api_post(api, f"/deployments/{deployments[name]}/create_flow_run", {})["id"])

            def finished() -> list[dict]:
                # Finished runs only: the scheduler also holds dozens of future runs of the 20 s group.
                body = {
                    "deployments": {"id": {"any_": list(deployments.values())}},
                    "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
                    "limit": 200,
                    "offset": 0,
                }
                runs = done = api_post(api, "/flow_runs/filter", body)
                on_schedule = [r for r in done if r["deployment_id"] == deployments[scheduled]]
                manual = [r for r in done if r["id"] in ids]
                return runs if len(on_schedule) >= 2 and len(manual) == len(ids) else []

            runs = wait_for(finished, 300, "two scheduled polls and two on-demand runs on the workers")
            assert not [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")], runs
            ids += [r["id"] for r in runs if r["state_type"] == "COMPLETED" and r["id"] not in ids]
    texts = [(root / f"worker-{n}.log").read_text(errors="replace") for n in range(2)]
    # Which worker ran which run: the runs it submitted, minus submissions the server aborted
    # (another worker had taken the run first). A worker may try one run more than once, so
    # tries are counted against aborts.
    ran = [
        set(
            (
                Counter(re.findall(r"submitting flow run '([0-9a-f-]+)'", text))
                - Counter(re.findall(r"Aborted submission of flow run '([0-9a-f-]+)'", text))
            ).keys()
        )
        for text in texts
    ]
    assert all(ran), f"a worker ran nothing: {[len(r) for r in ran]}"
    assert set(ids) <= ran[0] | ran[1] and not ran[0] & ran[1]
    table = ds.dataset(lake / "articles", format="parquet", partitioning="hive").to_table()
    keys = list(
        zip(table.column("article_id").to_pylist(), table.column("content_hash").to_pylist(), strict=True)
    )
    assert len(keys) == len(set(keys)) == 3 + 30


def sources_file(path: Path, base: str) -> Path:
    """Three sources in three poll groups: 20 s (scheduled during the test), 1 h and 1 d."""
    lines = ["sources:"]
    for source_id, route, interval in [
        ("centcom", "centcom/centcom-press-releases.RSS.ashx.xml", "20s"),
        ("un-europe", "corpus/FeedVerse/un-news-europe.rss.xml", "1h"),
        ("gone", "corpus/no-such-feed.xml", "1d"),
    ]:
        lines += [f"  - id: {source_id}", f'    url: "{base}/{route}"', f"    name: {source_id}"]
        lines += ["    publisher: test", "    kind: news", f"    poll_interval: {interval}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
