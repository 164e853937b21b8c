"""The backfill flow: one source's history through the poll's path, in committed, resumable batches."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from feedlake.flows.poll import PrefectHooks
from feedlake.tasks.backfill.captures import (
    Capture,
)
from feedlake.tasks.backfill.engine import (
    BackfillResult,
    Checkpoint,
    Normalizer,
    in_flight_limit,
    normalize_capture_safely,
)
from feedlake.tasks.errors import ConfigError
from feedlake.tasks.pipeline.backfill import run_source_backfill
from feedlake.tasks.pipeline.summary import markdown_table
from feedlake.tasks.settings import settings_with
from feedlake.tasks.sources.catalog import Source

# With a Dask task runner (see backfill_with_dask), each document is one task on the cluster.
normalize_document = task(name="normalize-document", cache_policy=NO_CACHE, persist_result=False)(
    normalize_capture_safely
)


def task_normalizer(source: Source, workers: int, batch_rows: int) -> Normalizer:
    """Normalize documents as Prefect tasks on the flow's task runner, about one batch ahead."""

    def run(todo: Iterator[Capture]) -> Iterator[tuple[Capture, Any]]:
        pending: deque[tuple[Capture, Any]] = deque()
        documents = rows = 0
        for capture in todo:
            pending.append((capture, normalize_document.submit(capture, source)))
            # As with the process pool: the cluster parses the next batch while this one commits.
            while len(pending) >= in_flight_limit(workers, batch_rows, documents, rows):
                first, future = pending.popleft()
                outcome = future.result()
                documents += 1
                rows += 0 if isinstance(outcome, str) else outcome.num_rows
                yield first, outcome
        while pending:
            first, future = pending.popleft()
            yield first, future.result()

    return run


@flow(name="feedlake-backfill", persist_result=False)
def backfill_flow(
    source: str,
    sources: str | None = None,
    lake: str | None = None,
    since: date | None = None,
    until: date | None = None,
    strategy: str = "auto",
    path: str | None = None,
    workers: int | None = None,
    on_task_runner: bool = False,
) -> BackfillResult:
    """Backfill one source's history (archive, paged, wayback or captured files) into the lake."""
    logger = get_run_logger()
    settings = settings_with(sources=sources, lake=lake)
    reporters: list[ProgressReporter] = []

    def progress(
        source_id: str, total: int | None, checkpoint: Checkpoint, resumed: bool
    ) -> ProgressReporter:
        if resumed:
            print(
                f"resuming the {checkpoint.strategy} backfill of {source_id} from its checkpoint: "
                f"{checkpoint.captures} documents and {checkpoint.rows_written} rows already committed",
                file=sys.stderr,
            )
        reporters.append(ProgressReporter(source_id, total, checkpoint.captures))
        return reporters[-1]

    try:
        result = run_source_backfill(
            settings,
            source,
            since=since,
            until=until,
            strategy=strategy,
            path=Path(path) if path else None,
            workers=workers,
            hooks=PrefectHooks(),
            progress=progress,
            normalizer=task_normalizer if on_task_runner else None,
        )
    finally:
        for reporter in reporters:
            reporter.close()
    create_markdown_artifact(backfill_markdown(result), key="feedlake-backfill", description="Backfill")
    logger.info(
        "backfill %s (%s): %d documents, %d rows seen, %d written, %d quarantined, %d duplicates, %.1f s",
        result.source_id,
        result.strategy,
        result.captures,
        result.rows_seen,
        result.rows_written,
        result.rows_quarantined,
        result.duplicates,
        result.seconds,
    )
    return result


def backfill_with_dask(address: str, workers: int) -> Any:
    """The backfill flow on a Dask cluster: ``local`` starts one of ``workers`` processes here."""
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "--dask needs the dask extra, which is not installed: pip install 'feedlake[dask]'"
        ) from None

    runner: Any
    if address == "local":
        runner = DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    else:
        runner = DaskTaskRunner(address=address)
    return backfill_flow.with_options(task_runner=runner)


class ProgressReporter:
    """A terminal progress bar (documents, rows written, rate, ETA) and a Prefect progress artifact."""

    def __init__(self, source_id: str, total: int | None, already: int) -> None:
        from tqdm import tqdm

        # disable=None: draw only on a terminal; scheduled runs get the artifact and the log instead.
        self._bar = tqdm(
            total=total,
            initial=already,
            desc=f"backfill {source_id}",
            unit="doc",
            disable=None,
            file=sys.stderr,
        )
        self._total = total
        self._already = already
        self._artifact: Any = create_progress_artifact(
            0.0, key="feedlake-backfill-progress", description="Backfill"
        )
        self._last_update = 0.0

    def __call__(self, result: BackfillResult) -> None:
        """Show the latest counts; the artifact is updated at most every two seconds."""
        done = self._already + result.captures
        self._bar.n = done
        self._bar.set_postfix(rows=result.rows_written, refresh=False)
        self._bar.refresh()
        now = time.monotonic()
        if result.finished or now - self._last_update >= 2:
            self._last_update = now
            share = 100.0 if result.finished else (100.0 * done / self._total if self._total else 0.0)
            update_progress_artifact(
                self._artifact,
                min(100.0, share),
                description=f"{done} documents, {result.rows_written} rows written",
            )

    def close(self) -> None:
        """Leave the bar's last line on the terminal."""
        self._bar.close()


def backfill_markdown(result: BackfillResult) -> str:
    """Markdown summary of a backfill, for its Prefect artifact."""
    rows = [
        ("strategy", result.strategy),
        ("resumed from a checkpoint", "yes" if result.resumed else "no"),
        ("documents read", str(result.captures)),
        ("documents skipped (already done)", str(result.captures_skipped)),
        ("documents that failed", str(result.captures_failed)),
        ("rows seen", str(result.rows_seen)),
        ("rows written", str(result.rows_written)),
        ("rows quarantined", str(result.rows_quarantined)),
        ("duplicates", str(result.duplicates)),
        ("commits", str(result.commits)),
        ("seconds", f"{result.seconds:.1f}"),
    ]
    lines = [f"# Backfill of `{result.source_id}`", "", markdown_table(("", "value"), rows)]
    if result.errors:
        lines += ["", "Documents that could not be read:", *[f"- {e}" for e in result.errors]]
    return "\n".join(lines)
