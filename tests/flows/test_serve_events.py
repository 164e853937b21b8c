"""Unattended: deployments declared once, `feedlake serve`, events that trigger compaction.

Runs against a real `prefect server start` (SQLite) in its own process, with `feedlake serve` in
another: a poll run of the served deployment commits a batch, emits `feedlake.batch.committed`,
and the compaction deployment's trigger starts a compaction of that source, which is observed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from feedlake.flows.deployments import build_deployments, interval_label, poll_groups
from feedlake.tasks.settings import FeedlakeSettings
from tests.conftest import free_port
from tests.support.prefect_server import ROOT, api_post, feedlake_env, prefect_server, running, wait_for

pytestmark = pytest.mark.slow


def sources_file(path: Path, base: str) -> Path:
    lines = ["sources:"]
    for source_id, route, interval in [
        ("centcom", "centcom/centcom-press-releases.RSS.ashx.xml", "1d"),
        ("un-europe", "corpus/FeedVerse/un-news-europe.rss.xml", None),
        ("gone", "corpus/no-such-feed.xml", "1d"),
    ]:
        lines += [f"  - id: {source_id}", f'    url: "{base}/{route}"', f"    name: {source_id}"]
        lines += ["    publisher: test", "    kind: news"]
        if interval:
            lines.append(f"    poll_interval: {interval}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_deployments_are_declared_once_per_interval_group(tmp_path: Path, snapshot_base_url: str) -> None:
    settings = FeedlakeSettings(
        sources=str(sources_file(tmp_path / "s.yaml", snapshot_base_url)), lake="/data/lake"
    )
    assert poll_groups(settings) == {900: ["un-europe"], 86400: ["centcom", "gone"]}
    deployments = {d.name: d for d in build_deployments(settings)}
    assert set(deployments) == {"poll-every-15m", "poll-every-1d", "compact", "backfill", "prune-history"}
    daily = deployments["poll-every-1d"]
    assert daily.parameters == {"sources": settings.sources, "lake": "/data/lake", "poll_interval": 86400}
    assert daily.schedules[0].schedule.interval == timedelta(days=1)
    # One poll of a group at a time; a tick that finds one running is cancelled, never queued.
    assert daily.concurrency_limit == 1
    assert daily.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    prune = deployments["prune-history"]
    assert prune.parameters == {"days": 14.0} and prune.schedules[0].schedule.cron == "41 4 * * *"
    compact = deployments["compact"]
    assert compact.schedules[0].schedule.cron == "17 3 * * *"
    trigger = compact.triggers[0]
    assert trigger.expect == {"feedlake.batch.committed"} and trigger.threshold == 24
    assert trigger.for_each == {"prefect.resource.id"}
    assert deployments["backfill"].schedules == [] and interval_label(90) == "90s"


def test_a_committed_batch_triggers_compaction_of_that_source(
    tmp_path_factory: pytest.TempPathFactory, snapshot_base_url: str
) -> None:
    root = tmp_path_factory.mktemp("serve")
    lake = root / "lake"
    sources = sources_file(root / "s.yaml", snapshot_base_url)
    with prefect_server(root, free_port()) as api:
        env = feedlake_env(
            api,
            root,
            FEEDLAKE_COMPACT_AFTER_BATCHES="1",
            FEEDLAKE_SOURCES=str(sources),
            FEEDLAKE_LAKE=str(lake),
        )
        with running(
            [sys.executable, "-m", "feedlake.flows.cli", "serve"], env, root / "serve.log"
        ) as serving:
            poll = wait_for(
                lambda: _deployment(api, "feedlake-poll", "poll-every-1d"), 90, "the served poll deployment"
            )
            compact = wait_for(lambda: _deployment(api, "feedlake-compact", "compact"), 30, "compaction")
            api_post(api, f"/deployments/{poll['id']}/create_flow_run", {})
            polled = wait_for(lambda: _finished_runs(api, poll["id"]), 180, "the poll run to finish")
            assert polled[0]["state_type"] == "COMPLETED", (root / "serve.log").read_text()[-3000:]
            events = wait_for(
                lambda: _events(api, "feedlake.batch.committed"), 60, "the committed-batch event"
            )
            payloads = [e["payload"] for e in events]
            assert [p["source_id"] for p in payloads] == ["centcom"], "only the 1d group was polled"
            assert payloads[0]["rows"] == 3 and payloads[0]["partitions"]
            failed = wait_for(lambda: _events(api, "feedlake.source.failed"), 60, "the failed-source event")
            assert [e["resource"]["feedlake.source_id"] for e in failed] == ["gone"]
            assert (
                failed[0]["payload"]["kind"] == "fetch"
                and "no-such-feed.xml" in failed[0]["payload"]["error"]
            )
            runs = wait_for(lambda: _finished_runs(api, compact["id"]), 120, "the triggered compaction run")
            assert runs[0]["state_type"] == "COMPLETED"
            assert runs[0]["parameters"]["source"] == "centcom"
    assert serving.returncode == 0, (root / "serve.log").read_text()[-3000:]
    assert not list(lake.glob("_txn/*"))


def _deployment(api: str, flow: str, name: str) -> dict | None:
    import httpx

    response = httpx.get(f"{api}/deployments/name/{flow}/{name}", timeout=10)
    return response.json() if response.status_code == 200 else None


def _events(api: str, name: str) -> list[dict]:
    # Events are persisted in the background: ask until they are there.
    body = {"filter": {"event": {"name": [name]}}, "limit": 50}
    return list(api_post(api, "/events/filter", body)["events"])


def _finished_runs(api: str, deployment_id: str) -> list[dict]:
    runs = api_post(
        api,
        "/flow_runs/filter",
        {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 10, "offset": 0, "sort": "ID_DESC"},
    )
    return [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]


def test_sigterm_with_a_run_in_flight_leaves_nothing_half_committed(
    tmp_path_factory: pytest.TempPathFactory, snapshot_base_url: str
) -> None:
    from feedlake.tasks.lake.commit import recover_lake
    from feedlake.tasks.lake.storage import open_store
    from tests.support.hostile_server import hostile_server
    from tests.support.lake_ops import article_keys

    root = tmp_path_factory.mktemp("sigterm")
    lake = root / "lake"
    with hostile_server() as hostile, prefect_server(root, free_port()) as api:
        lines = ["sources:"]
        for source_id, url in [
            ("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml"),
            ("slow", f"{hostile}/trickle"),  # one byte a second: keeps the run in flight
        ]:
            lines += [
                f"  - id: {source_id}",
                f'    url: "{url}"',
                f"    name: {source_id}",
                "    publisher: t",
            ]
            lines += ["    kind: news", "    poll_interval: 1d"]
        sources = root / "s.yaml"
        sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = feedlake_env(api, root, FEEDLAKE_SOURCES=str(sources), FEEDLAKE_LAKE=str(lake))
        with running(
            [sys.executable, "-m", "feedlake.flows.cli", "serve"], env, root / "serve.log", 90
        ) as serving:
            poll = wait_for(
                lambda: _deployment(api, "feedlake-poll", "poll-every-1d"), 90, "the poll deployment"
            )
            run = api_post(api, f"/deployments/{poll['id']}/create_flow_run", {})

            def in_flight() -> bool:
                state = api_post(
                    api,
                    "/flow_runs/filter",
                    {"flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 1, "offset": 0},
                )
                return bool(state) and state[0]["state_type"] == "RUNNING"

            wait_for(in_flight, 90, "the poll run to be in flight")
            time.sleep(3)
            # Leaving the block sends SIGTERM while the run is still fetching.
        assert serving.returncode == 0, (root / "serve.log").read_text()[-3000:]
        # Whatever the cut-off run had written is rolled back or forward; then a fresh poll commits once.
        store = open_store(str(lake))
        recover_lake(store)
        assert store.list("_txn/") == []
        follow_up = {**env, "FEEDLAKE_TOTAL_TIMEOUT": "3", "FEEDLAKE_FETCH_ATTEMPTS": "1"}
        subprocess.run(
            [sys.executable, "-m", "feedlake.flows.cli", "poll"],
            cwd=ROOT,
            env=follow_up,
            check=True,
            capture_output=True,
        )
        keys = article_keys(store)
        assert len(keys) == len(set(keys)) == 3
