"""What an orchestrator adds around the stages: task wrapping and retries, published reports, events.

``PipelineHooks`` runs the stages plainly, in this process, with transient errors retried after the
configured delays: what ``feedlake.poll`` and the benchmarks use. The Prefect flows pass hooks that
make each stage a Prefect task, publish markdown artifacts and emit events (``flows/poll.py``); the
wiring in ``pipeline/poll.py`` is the same either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from feedlake.tasks.errors import is_transient
from feedlake.tasks.lake.commit import CommitRecord
from feedlake.tasks.values import SourceReport

P = ParamSpec("P")
R = TypeVar("R")


class PipelineHooks:
    """The stages run in this process; reports and events go nowhere but the log."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.logger: logging.Logger | logging.LoggerAdapter[Any] = logger or logging.getLogger("feedlake")

    def stage(
        self, name: str, function: Callable[P, R], retries: int = 0, delays: Sequence[float] = ()
    ) -> Callable[P, R]:
        """``function`` run as the stage ``name``, retried up to ``retries`` times on transient errors."""

        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(retries + 1):
                try:
                    return function(*args, **kwargs)
                except Exception as exc:
                    if attempt == retries or not is_transient(exc):
                        raise
                    delay = delays[min(attempt, len(delays) - 1)] if delays else 0.0
                    self.logger.warning("%s failed (%s); retrying in %.1f s", name, exc, delay)
                    time.sleep(delay)
            raise AssertionError("unreachable: the last attempt returns or raises")

        return run

    def publish(self, key: str, markdown: str, description: str) -> None:
        """A report for people (a Prefect artifact under Prefect); plain runs print their own summary."""

    def committed(self, lake: str, record: CommitRecord, reports: Iterable[SourceReport]) -> None:
        """Called once a run's rows are committed (Prefect emits events here)."""
