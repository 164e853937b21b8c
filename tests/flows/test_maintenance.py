"""Bounded Prefect history: prune-history deletes feedlake's finished runs older than its window, only."""

from __future__ import annotations

import time

from prefect import flow
from prefect.client.orchestration import get_client

from feedlake.flows.maintenance import prune_history_flow


@flow(name="feedlake-test-tiny")
def tiny_flow() -> int:
    return 1


@flow(name="someone-elses-flow")
def other_flow() -> int:
    return 2


def _tiny_run_ids(name: str = "feedlake-test-tiny") -> set[str]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
            sort=FlowRunSort.ID_DESC,
            limit=50,
        )
    return {str(run.id) for run in runs}


def test_prune_history_keeps_recent_runs_and_deletes_older_ones(prefect_api: None) -> None:
    tiny_flow()
    tiny_flow()
    other_flow()
    assert len(_tiny_run_ids()) >= 2
    assert prune_history_flow(days=14) == 0, "a 14-day window deleted runs of this session"
    assert len(_tiny_run_ids()) >= 2
    time.sleep(1.0)
    deleted = prune_history_flow(days=0.5 / 86400)  # half a second: every run finished before now
    assert deleted >= 2
    assert _tiny_run_ids() == set()
    assert _tiny_run_ids("someone-elses-flow"), "a flow that is not feedlake's lost its history"
