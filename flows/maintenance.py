"""Bounded Prefect history: a flow that deletes finished flow runs older than the history window.

Deleting a flow run deletes its task runs; Prefect's own vacuum service (enabled on the server
``feedlake serve`` starts, see the README for other servers) then removes their logs, artifacts and
old events. Run by the ``feedlake-prune-history/prune-history`` deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger

from feedlake.tasks.settings import FeedlakeSettings

PAGE = 200
FLOW_PREFIX = "feedlake-"


@flow(name="feedlake-prune-history", log_prints=False)
def prune_history_flow(days: float | None = None) -> int:
    """Delete feedlake's finished flow runs that ended over ``days`` (default FEEDLAKE_HISTORY_DAYS) ago."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    window = days if days is not None else FeedlakeSettings().history_days
    cutoff = datetime.now(UTC) - timedelta(days=window)
    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    deleted = 0
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                # feedlake's own flows only: a shared server holds other teams' history too.
                flow_filter=FlowFilter(name=FlowFilterName(like_=FLOW_PREFIX)),
                flow_run_filter=FlowRunFilter(
                    end_time=FlowRunFilterEndTime(before_=cutoff),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=finished)),
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=PAGE,
            )
            for run in runs:
                client.delete_flow_run(run.id)
            deleted += len(runs)
            if len(runs) < PAGE:
                break
    get_run_logger().info("deleted %d flow runs that ended before %s", deleted, cutoff.isoformat())
    return deleted
