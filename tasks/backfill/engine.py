"""Backfill engine: historical captures through the poll's normalize / validate / write path.

Input: a source, an iterator of captures (see ``backfill_captures``), and a commit function.
Captures are parsed and normalized in worker processes, about one batch ahead of the parent (so the
workers parse the next batch while the parent commits this one, and memory follows the batch size,
not the archive size); with one worker everything runs inline. Rows are committed in batches,
each under the lake's lease for seconds only, so scheduled polls keep running. Each batch is
deduplicated against the source's seen index under that lease: re-running a backfill, or
overlapping it with polls, adds nothing twice. After each commit a checkpoint in the lake records
what is done; an interrupted backfill resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.backfill.captures import Capture
from feedlake.tasks.errors import FeedlakeError
from feedlake.tasks.lake.storage import ObjectStore, update_object
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.validate.validator import ArticleValidator
from feedlake.tasks.values import FetchResult
from feedlake.tasks.worker_process import exit_with_parent

log = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 20
# Most documents parsed ahead of the commit, whatever their size (see in_flight_limit).
MAX_IN_FLIGHT = 256
WORKER_NICENESS = 10


def checkpoint_key(source_id: str) -> str:
    """Key of a source's backfill checkpoint."""
    return f"_state/backfill/{source_id}.json"


@dataclass
class Checkpoint:
    """What a backfill of one source has committed so far."""

    source_id: str
    strategy: str
    started_at: str
    done: list[str] = field(default_factory=list)
    cursor: str | None = None
    captures: int = 0
    rows_written: int = 0
    finished: bool = False
    updated_at: str | None = None


@dataclass
class BackfillResult:
    """What a backfill did."""

    source_id: str
    strategy: str
    captures: int = 0
    captures_failed: int = 0
    captures_skipped: int = 0
    rows_seen: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    duplicates: int = 0
    commits: int = 0
    resumed: bool = False
    finished: bool = False
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchCommit:
    """One committed batch of a backfill."""

    run_id: str
    written: int
    quarantined: int
    duplicates: int


Progress = Callable[[BackfillResult], None]
# Turns captures into (capture, rows or error reason), in order; the default is a process pool.
Normalizer = Callable[[Iterator[Capture]], Iterator[tuple[Capture, "pa.RecordBatch | str"]]]
Committer = Callable[[ObjectStore, pa.Table, ArticleValidator, float, float, int], BatchCommit]


def read_checkpoint(store: ObjectStore, source_id: str) -> Checkpoint | None:
    """The source's backfill checkpoint, if a backfill ever committed anything."""
    raw = store.get(checkpoint_key(source_id))
    return None if raw is None else Checkpoint(**json.loads(raw))


def write_checkpoint(store: ObjectStore, checkpoint: Checkpoint) -> None:
    """Store the checkpoint (compare-and-swap, so a concurrent writer is never silently lost)."""
    checkpoint.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
    body = json.dumps(asdict(checkpoint), indent=1).encode()
    update_object(store, checkpoint_key(checkpoint.source_id), lambda _: body, "backfill checkpoint")


def start_or_resume(store: ObjectStore, source_id: str, strategy: str) -> tuple[Checkpoint, bool]:
    """The checkpoint to continue: an unfinished one of the same strategy, else a fresh one."""
    found = read_checkpoint(store, source_id)
    if found is not None and not found.finished and found.strategy == strategy:
        return found, True
    return Checkpoint(source_id, strategy, datetime.now(UTC).isoformat(timespec="seconds")), False


def normalize_capture(capture: Capture, source: Source) -> pa.RecordBatch:
    """Parse and normalize one captured document (runs in a worker process)."""
    fetched = FetchResult(
        source_id=source.id,
        url=capture.url or source.url,
        fetched_at=datetime.now(UTC),
        status=200,
        body=capture.body,
        headers=capture.headers,
        capture_source=capture.capture_source,
        captured_at=capture.captured_at,
    )
    return normalize_feed(parse_feed(fetched), source, "backfill")


def run_backfill(
    store: ObjectStore,
    source: Source,
    captures: Iterator[Capture],
    checkpoint: Checkpoint,
    *,
    validator: ArticleValidator,
    commit: Committer,
    lease_seconds: float,
    lease_wait_seconds: float,
    row_group_rows: int,
    workers: int = 1,
    batch_rows: int = 50_000,
    since: date | None = None,
    until: date | None = None,
    progress: Progress | None = None,
    resumed: bool = False,
    normalizer: Normalizer | None = None,
) -> BackfillResult:
    """Normalize every capture not done yet and commit the rows in batches, checkpointing each."""
    started = time.perf_counter()
    result = BackfillResult(source.id, checkpoint.strategy, resumed=resumed)
    result.rows_written = checkpoint.rows_written
    done = set(checkpoint.done)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    pending_keys: list[str] = []
    cursor = checkpoint.cursor

    def flush() -> None:
        nonlocal pending, pending_rows, pending_keys
        if pending_keys:
            # One chunk, not one per document (taking rows from many chunks is a pass over all of them
            # per call), and the per-document batches can go before the commit instead of after it.
            rows = pa.Table.from_batches(pending, schema=ARTICLE_SCHEMA).combine_chunks()
            pending = []
            rows = _in_range(rows, since, until)
            committed = commit(store, rows, validator, lease_seconds, lease_wait_seconds, row_group_rows)
            result.rows_written += committed.written
            result.rows_quarantined += committed.quarantined
            result.duplicates += committed.duplicates
            result.commits += 1
            checkpoint.done.extend(pending_keys)
            checkpoint.cursor = cursor
            checkpoint.captures += len(pending_keys)
            checkpoint.rows_written = result.rows_written
            write_checkpoint(store, checkpoint)
        pending, pending_rows, pending_keys = [], 0, []
        # Arrow's allocator keeps freed pages for reuse: hand them back between batches, so peak
        # memory follows one batch rather than the largest the allocator ever held.
        pa.default_memory_pool().release_unused()

    todo = (c for c in captures if not _skip(c, done, result))
    documents = normalizer(todo) if normalizer is not None else _normalized(todo, source, workers, batch_rows)
    while True:
        try:
            capture, outcome = next(documents)
        except StopIteration:
            break
        except FeedlakeError:
            # A document the chain cannot fetch ends the run: keep what was read before it.
            flush()
            raise
        result.captures += 1
        if isinstance(outcome, str):
            result.captures_failed += 1
            if len(result.errors) < MAX_ERRORS_KEPT:
                result.errors.append(f"{capture.key}: {outcome}")
            log.warning("backfill %s: capture %s skipped: %s", source.id, capture.key, outcome)
        else:
            pending.append(outcome)
            pending_rows += outcome.num_rows
            result.rows_seen += outcome.num_rows
        pending_keys.append(capture.key)
        cursor = capture.cursor
        if pending_rows >= batch_rows:
            flush()
        if progress is not None:
            progress(result)
    flush()
    checkpoint.finished = True
    write_checkpoint(store, checkpoint)
    result.finished = True
    result.seconds = time.perf_counter() - started
    if progress is not None:
        progress(result)
    return result


def _normalized(
    todo: Iterator[Capture], source: Source, workers: int, batch_rows: int
) -> Iterator[tuple[Capture, pa.RecordBatch | str]]:
    """Each capture with its rows (or its error), in capture order.

    With ``workers`` > 1 the documents are parsed in a process pool, about one batch of rows ahead
    (see ``in_flight_limit``): while the caller commits a batch, the workers keep parsing the next.
    """
    if workers <= 1:
        for capture in todo:
            yield capture, normalize_capture_safely(capture, source)
        return
    # spawn, not fork: the parent runs threads (Prefect, GX) that a fork would copy mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=lower_priority) as pool:
        in_flight: deque[tuple[Capture, Future[pa.RecordBatch | str]]] = deque()
        documents = rows = 0
        limit = in_flight_limit(workers, batch_rows, documents, rows)
        captures = iter(todo)
        while True:
            try:
                capture = next(captures)
            except StopIteration:
                break
            except FeedlakeError:
                # The chain broke: what was already sent to the workers was read, so it is kept.
                while in_flight:
                    first, future = in_flight.popleft()
                    yield first, future.result()
                raise
            in_flight.append((capture, pool.submit(normalize_capture_safely, capture, source)))
            while len(in_flight) >= limit:
                first, future = in_flight.popleft()
                outcome = future.result()
                documents += 1
                rows += 0 if isinstance(outcome, str) else outcome.num_rows
                limit = in_flight_limit(workers, batch_rows, documents, rows)
                yield first, outcome
        while in_flight:
            first, future = in_flight.popleft()
            yield first, future.result()


def in_flight_limit(workers: int, batch_rows: int, documents: int, rows: int) -> int:
    """Documents to keep in the pool: about one batch of rows (by the mean so far), within bounds."""
    # The parent commits a batch while the workers run: with fewer documents queued than a batch
    # holds, the workers would sit idle for most of each commit (one more per worker, so the next
    # batch's last documents are already being parsed). Parsed rows take about as much memory as
    # the documents they came from, so this bounds memory at about one batch more.
    if documents == 0:
        return 2 * workers
    per_document = max(1.0, rows / documents)
    return max(2 * workers, min(MAX_IN_FLIGHT, math.ceil(batch_rows / per_document) + workers))


def lower_priority() -> None:
    """Lower this worker process's CPU priority (where the platform has ``nice``); it ends with its
    parent (``exit_with_parent``)."""
    exit_with_parent()
    # The parent's commit is the serial part of a backfill: when the workers and the parent want
    # more cores than there are, the parent goes first, and so do polls sharing the host.
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)


def _skip(capture: Capture, done: set[str], result: BackfillResult) -> bool:
    if capture.key in done:
        result.captures_skipped += 1
        return True
    return False


def normalize_capture_safely(capture: Capture, source: Source) -> pa.RecordBatch | str:
    """Rows of one capture, or the reason it cannot be read (text travels back from any worker)."""
    # One bad document never stops a backfill.
    try:
        return normalize_capture(capture, source)
    except FeedlakeError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - a parser surprise is that capture's error, not the run's
        return f"{type(exc).__name__}: {exc}"


def _in_range(rows: pa.Table, since: date | None, until: date | None) -> pa.Table:
    if since is not None:
        rows = rows.filter(pc.greater_equal(rows.column("published_date"), pa.scalar(since, pa.date32())))
    if until is not None:
        rows = rows.filter(pc.less_equal(rows.column("published_date"), pa.scalar(until, pa.date32())))
    return rows
