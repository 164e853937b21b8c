"""The poll flow: ``pipeline.poll.run_poll`` with each stage a Prefect task, artifacts and events."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import opaque

from feedlake.flows.events import emit_poll_events
from feedlake.tasks.errors import is_transient
from feedlake.tasks.lake.commit import CommitRecord
from feedlake.tasks.pipeline.hooks import PipelineHooks
from feedlake.tasks.pipeline.poll import commit_delays, run_poll
from feedlake.tasks.pipeline.summary import RunSummary
from feedlake.tasks.settings import settings_with
from feedlake.tasks.values import SourceReport

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["PrefectHooks", "commit_delays", "poll_flow", "retry_transient_only", "transient_retrying"]


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only errors marked transient."""
    try:
        state.result(raise_on_failure=True)
    except Exception as exc:  # noqa: BLE001 - classifying, not handling
        return is_transient(exc)
    return False


# Stage inputs are large (bodies, Arrow tables): never hash them for caching or persist them.
_NO_CACHE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def transient_retrying(
    function: Callable[P, R], name: str, retries: int, delays: Sequence[float]
) -> Task[P, R]:
    """``function`` as a Prefect task retried only on transient errors, never cached or persisted."""
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=list(delays),
        retry_condition_fn=retry_transient_only,
        **_NO_CACHE,
    )(function)


class PrefectHooks(PipelineHooks):
    """The pipeline's stages as Prefect tasks, its reports as artifacts, its commits as events."""

    def __init__(self) -> None:
        super().__init__(get_run_logger())

    def stage(
        self, name: str, function: Callable[P, R], retries: int = 0, delays: Sequence[float] = ()
    ) -> Callable[P, R]:
        """``function`` as a Prefect task; its arguments passed whole."""
        wrapped = transient_retrying(function, name, retries, delays)

        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            # Prefect visits every element of a task's arguments (looking for futures to wait on):
            # over a thousand sources' reports and results that costs milliseconds per source and stage.
            whole: Any = [opaque(value) for value in args]
            return wrapped(*whole, **{key: opaque(value) for key, value in kwargs.items()})  # type: ignore[arg-type]

        return run

    def publish(self, key: str, markdown: str, description: str) -> None:
        """A markdown artifact on the flow run."""
        create_markdown_artifact(markdown, key=key, description=description)

    def committed(self, lake: str, record: CommitRecord, reports: Iterable[SourceReport]) -> None:
        """The run's Prefect events (``flows/events.py``)."""
        emit_poll_events(lake, record, reports)


@flow(name="feedlake-poll", persist_result=False)
def poll_flow(
    sources: str | None = None, lake: str | None = None, poll_interval: int | None = None
) -> RunSummary:
    """Poll every enabled source of a sources file once (or only those polled every ``poll_interval`` s)."""
    settings = settings_with(sources=sources, lake=lake)
    return run_poll(settings, interval=poll_interval, hooks=PrefectHooks())
