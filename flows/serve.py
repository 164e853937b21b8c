"""``feedlake serve``: every deployment served from this process, on a Prefect API that schedules them.

Start-up order: the API (``PREFECT_API_URL``, else a child ``prefect server start``), then runs left
Running by a dead serve are marked Crashed (which frees their deployment's concurrency slot), then
Prefect's runner serves the deployments until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from flows.prefect_server import prefect_api
from tasks.settings import FeedlakeSettings

log = logging.getLogger("feedlake.serve")

ORPHAN_STATES = ("RUNNING", "PENDING", "CANCELLING")


def stop_handler(runner: Any) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM/SIGINT handler that stops the runner from inside its loop; a second signal forces it."""
    requested: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise KeyboardInterrupt from None
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)
        print("feedlake serve: stopping (runs in flight are cancelled; the lake recovers them)", flush=True)
        # Raising here would unwind whichever coroutine happens to run; astop cancels them in order.
        loop.call_soon_threadsafe(lambda: loop.create_task(runner.astop()))

    return handler


def mark_orphaned_runs_crashed(deployments: Sequence[Any]) -> list[str]:
    """Mark runs of these deployments still Running/Pending (their process is gone) as Crashed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    marked: list[str] = []
    with get_client(sync_client=True) as client:
        ids = []
        for deployment in deployments:
            try:
                ids.append(client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}").id)
            except ObjectNotFound:
                continue
        if not ids:
            return marked
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=ids),
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType(s) for s in ORPHAN_STATES])
                ),
            ),
            # Explicit: FastAPI >= 0.151 makes the server refuse the nulls Prefect 3.8 sends for them.
            sort=FlowRunSort.ID_DESC,
            limit=200,
        )
        for run in runs:
            # Universal transforms still apply to a forced state, so the run's concurrency slot is freed.
            client.set_flow_run_state(
                run.id,
                Crashed(message="the feedlake serve process that ran this flow run is gone"),
                force=True,
            )
            marked.append(run.name)
    return marked


def serve_deployments(settings: FeedlakeSettings) -> None:
    """Serve every deployment until Ctrl-C or SIGTERM; start a Prefect server first if none is set."""
    # Until the runner's loop runs, a stop request unwinds start-up (which stops the server it started).
    signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
    with contextlib.suppress(KeyboardInterrupt):
        _serve_on_api(settings)
    print("feedlake serve: stopped", flush=True)


def _serve_on_api(settings: FeedlakeSettings) -> None:
    with prefect_api(settings) as api_url:
        # Flow runs are subprocesses of the runner: they inherit the API this way.
        os.environ["PREFECT_API_URL"] = api_url
        from prefect.runner import Runner

        from flows.prefect_compat import mend_prefect

        mend_prefect()
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.deployments import build_deployments, interval_label, poll_groups

        # Prefect reads its settings once, at import; this process may have imported it already.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            deployments = build_deployments(settings)
            try:
                crashed = mark_orphaned_runs_crashed(deployments)
            except Exception as exc:  # a check that failed must not keep polls from running
                log.warning("could not look for runs left running by a previous serve: %s", exc)
                crashed = []
            if crashed:
                print(f"marked {len(crashed)} runs of a previous serve as crashed: {', '.join(crashed)}")
            for seconds, ids in poll_groups(settings).items():
                print(f"poll-every-{interval_label(seconds)}: {len(ids)} sources")
            print(f"Prefect API: {api_url} (UI: {api_url.removesuffix('/api')})", flush=True)
            # Schedules keep running while serve is down, so a restart resumes at the next tick.
            runner = Runner(pause_on_shutdown=False)
            # Prefect's own SIGTERM handler calls sys.exit from inside its loop (and leaves a
            # coroutine never awaited); ours asks the runner to stop, for SIGTERM and Ctrl-C alike.
            runner.handle_sigterm = stop_handler(runner)  # type: ignore[method-assign]
            signal.signal(signal.SIGINT, runner.handle_sigterm)
            for deployment in deployments:
                runner.add_deployment(deployment)
            asyncio.run(runner.start())
