"""``feedlake serve``: every deployment served from this process, on a Prefect API that schedules them.

Start-up order: the API (``PREFECT_API_URL`` or the Prefect profile's API URL, else a child
``prefect server start``), then runs that a dead serve of this host left Running are marked
Crashed (which frees their deployment's concurrency slot), then Prefect's runner serves the
deployments until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from feedlake.flows.prefect_server import prefect_api, serve_lock
from feedlake.tasks.settings import FeedlakeSettings

log = logging.getLogger("feedlake.serve")

ORPHAN_STATES = ("RUNNING", "PENDING", "CANCELLING")
PAGE = 200


def served_by_tag() -> str:
    """The tag this host's serve puts on its deployments, so their runs say who ran them."""
    return f"feedlake-served-by:{socket.gethostname()}"


def stop_handler(runner: Any) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM/SIGINT handler that stops the runner from inside its loop; a second signal forces it."""
    requested: list[int] = []
    pending: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks

    def request_stop(loop: asyncio.AbstractEventLoop) -> None:
        if not runner.started:
            # The runner refuses to stop until it has started: ask again shortly.
            loop.call_later(0.2, request_stop, loop)
            return
        task = loop.create_task(runner.astop())
        pending.add(task)
        task.add_done_callback(pending.discard)

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
        loop.call_soon_threadsafe(request_stop, loop)

    return handler


def mark_orphaned_runs_crashed(deployments: Sequence[Any], tag: str) -> list[str]:
    """Mark runs of these deployments that this host's serve left Running/Pending as Crashed.

    Only runs tagged by this host count: on a shared server, other hosts' live runs are left alone.
    The caller holds this host's serve lock, so no live serve of this host owns them.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
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
        orphans = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=ids),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in ORPHAN_STATES])),
            tags=FlowRunFilterTags(all_=[tag]),
        )
        while True:
            # Explicit sort and limit: FastAPI >= 0.151 makes the server refuse the nulls Prefect 3.8 sends.
            runs = client.read_flow_runs(flow_run_filter=orphans, sort=FlowRunSort.ID_DESC, limit=PAGE)
            for run in runs:
                # Universal transforms apply to a forced state too, so the run's concurrency slot is freed.
                client.set_flow_run_state(
                    run.id,
                    Crashed(message="the feedlake serve process that ran this flow run is gone"),
                    force=True,
                )
                marked.append(run.name)
            if len(runs) < PAGE:
                return marked


def serve_deployments(settings: FeedlakeSettings) -> None:
    """Serve every deployment until Ctrl-C or SIGTERM; start a Prefect server first if none is set."""
    # Until the runner's loop runs, a stop request unwinds start-up (which stops the server it started).
    # Not getsignal(SIGINT): a shell's background job has SIGINT ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt), serve_lock(Path(settings.home).expanduser()):
        _serve_on_api(settings)
    print("feedlake serve: stopped", flush=True)


def _serve_on_api(settings: FeedlakeSettings) -> None:
    with prefect_api(settings) as api_url:
        # Flow runs are subprocesses of the runner: they inherit the API this way.
        os.environ["PREFECT_API_URL"] = api_url
        from prefect.runner import Runner
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from feedlake.flows.deployments import build_deployments, interval_label, poll_groups
        from feedlake.flows.prefect_compat import mend_prefect

        mend_prefect()
        # Prefect reads its settings once, at import; this process may have imported it already.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            tag = served_by_tag()
            deployments = build_deployments(settings)
            for deployment in deployments:
                deployment.tags = [*deployment.tags, tag]
            try:
                crashed = mark_orphaned_runs_crashed(deployments, tag)
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
