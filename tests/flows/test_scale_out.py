"""Scale-out: deployments on a process work pool, two `prefect worker` processes pulling the runs.

A real `prefect server start` (SQLite here; Postgres in infra/docker-compose.yml), `feedlake deploy`,
two workers with one run at a time each, six poll runs: both workers do work, and the lake holds
every article exactly once.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections import Counter

import pyarrow.dataset as ds
import pytest

from tests.conftest import free_port
from tests.flows.test_serve_events import sources_file
from tests.prefect_server import ROOT, api_post, feedlake_env, prefect_server, running, wait_for

pytestmark = pytest.mark.slow


def test_two_workers_share_the_runs_and_write_each_article_once(
    tmp_path_factory: pytest.TempPathFactory, snapshot_base_url: str
) -> None:
    root = tmp_path_factory.mktemp("scale-out")
    lake = root / "lake"
    sources = sources_file(root / "s.yaml", snapshot_base_url)
    with prefect_server(root, free_port()) as api:
        env = feedlake_env(api, root, PREFECT_WORKER_QUERY_SECONDS="1")
        api_post(api, "/work_pools/", {"name": "feedlake-test", "type": "process"})
        deploy = [sys.executable, "-m", "flows.cli", "deploy", "--pool", "feedlake-test"]
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
            for name in ("poll-every-15m", "poll-every-1d"):
                deployment = api_post(
                    api,
                    "/deployments/filter",
                    {"deployments": {"name": {"any_": [name]}}, "limit": 1, "offset": 0},
                )[0]
                for _ in range(3):
                    ids.append(api_post(api, f"/deployments/{deployment['id']}/create_flow_run", {})["id"])

            def finished() -> list[dict]:
                runs = api_post(
                    api, "/flow_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": 10, "offset": 0}
                )
                done = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
                return runs if len(done) == len(ids) else []

            runs = wait_for(finished, 300, "six poll runs on two workers")
            assert {r["state_type"] for r in runs} == {"COMPLETED"}
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
    assert ran[0] | ran[1] == set(ids) and not ran[0] & ran[1]
    table = ds.dataset(lake / "articles", format="parquet", partitioning="hive").to_table()
    keys = list(
        zip(table.column("article_id").to_pylist(), table.column("content_hash").to_pylist(), strict=True)
    )
    assert len(keys) == len(set(keys)) == 3 + 30
