"""feedlake: RSS, Atom, JSON Feed and official press-release feeds into a data lake.

The public API for library users, no Prefect server or flow run needed::

    import feedlake

    summary = feedlake.poll("sources.yaml", "./lake")
    print(summary.rows_committed, summary.sources_failed)
    feedlake.backfill("sources.yaml", "./lake", "centcom", strategy="files", path="captures/")

Both run the same wiring the ``feedlake`` command's Prefect flows run (``feedlake.tasks.pipeline``),
with the same lake, reports and guarantees; only the Prefect task runs, artifacts and events are
missing. Settings come from ``FEEDLAKE_*`` variables unless given.

(This file is ``api/__init__.py`` in the repository: the package root that ``flows/``, ``tasks/``
and ``schemas/`` are installed under.)
"""

from __future__ import annotations

from datetime import date
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedlake.tasks.errors import ConfigError, FeedlakeError
from feedlake.tasks.pipeline.summary import RunSummary
from feedlake.tasks.settings import FeedlakeSettings

if TYPE_CHECKING:
    from feedlake.tasks.backfill.engine import BackfillResult

__all__ = ["BackfillResult", "FeedlakeError", "FeedlakeSettings", "RunSummary", "backfill", "poll"]


def poll(
    sources: str | PathLike[str], lake: str | PathLike[str], settings: FeedlakeSettings | None = None
) -> RunSummary:
    """Poll every enabled source of a sources file once into ``lake`` (a folder or ``s3://`` URL)."""
    from feedlake.tasks.pipeline.poll import run_poll

    return run_poll(_settings(settings, sources, lake))


def backfill(
    sources: str | PathLike[str],
    lake: str | PathLike[str],
    source_id: str,
    *,
    since: date | None = None,
    until: date | None = None,
    strategy: str = "auto",
    path: str | PathLike[str] | None = None,
    workers: int | None = None,
    settings: FeedlakeSettings | None = None,
) -> BackfillResult:
    """Backfill one source's history into ``lake`` (resuming its checkpoint if one is there)."""
    from feedlake.tasks.pipeline.backfill import run_source_backfill

    return run_source_backfill(
        _settings(settings, sources, lake),
        source_id,
        since=since,
        until=until,
        strategy=strategy,
        path=Path(path) if path is not None else None,
        workers=workers,
    )


def _settings(
    settings: FeedlakeSettings | None, sources: str | PathLike[str], lake: str | PathLike[str]
) -> FeedlakeSettings:
    _refuse_in_a_starting_worker()
    base = settings or FeedlakeSettings()
    return base.model_copy(update={"sources": str(sources), "lake": str(lake)})


def _refuse_in_a_starting_worker() -> None:
    """Fail at once when called by a script that a starting worker process is importing."""
    import multiprocessing

    # A worker process feedlake starts (to parse, extract or backfill) first imports the script that
    # started its parent, as Python's "spawn" does. A script calling feedlake at its top level, with
    # no ``if __name__ == "__main__":``, would start a second run in every worker, which would wait
    # for the lake its parent holds. Refused here, the worker ends and the parent does the work.
    # (The check multiprocessing makes itself before it starts a process from such a worker.)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            "feedlake was called while one of its worker processes was starting: put the calls of the "
            'script that starts feedlake under `if __name__ == "__main__":` (worker processes import it)'
        )


def __getattr__(name: str) -> Any:
    # Every feedlake.* import runs this package first: the backfill machinery (worker pools,
    # captures) loads only when someone asks for it, not on every `feedlake poll`.
    if name == "BackfillResult":
        from feedlake.tasks.backfill.engine import BackfillResult

        return BackfillResult
    raise AttributeError(f"module 'feedlake' has no attribute {name!r}")
